// Authentication of one bucket's requests: token from the configured sources, verified by the JWT block
// that applies (the bucket's own `auth.jwt`, else the top-level `jwt`), then the claim rules of that
// block and the bucket's `auth.claims_verification`. Every outcome is counted per bucket.
import type { IncomingMessage } from 'node:http';
import type { HttpError } from '../http/errors.js';
import { firstFailingRule, type CompiledRule } from './claims.js';
import { authHttpError, missingToken } from './http.js';
import { extractToken } from './tokens.js';
import { AuthFailure, type AuthFailureKind, type TokenVerifier, type VerifiedToken } from './verifier.js';

export type AuthResult = 'success' | AuthFailureKind;

export type AuthOutcome = { ok: true; token: VerifiedToken } | { ok: false; error: HttpError };

export class BucketAuth {
  constructor(
    readonly bucket: string,
    readonly verifier: TokenVerifier,
    private readonly rules: readonly CompiledRule[],
    private readonly count: (bucket: string, result: AuthResult) => void,
  ) {}

  /**
   * Never throws: the pipeline turns a refusal into its answer. A token verified before is decided
   * synchronously (the common case on a hot path); only a new one returns a promise.
   */
  authenticate(req: IncomingMessage): AuthOutcome | Promise<AuthOutcome> {
    const token = extractToken(req, this.verifier.config.token_sources);
    if (token === null) return this.refuse(missingToken());
    const known = this.verifier.cached(token);
    return known !== null ? this.decide(known) : this.verifyThenDecide(token);
  }

  private async verifyThenDecide(token: string): Promise<AuthOutcome> {
    let verified: VerifiedToken;
    try {
      verified = await this.verifier.verify(token);
    } catch (err) {
      if (err instanceof AuthFailure) return this.refuse(err);
      throw err;
    }
    return this.decide(verified);
  }

  private decide(verified: VerifiedToken): AuthOutcome {
    if (firstFailingRule(verified.claims, this.rules) !== null) {
      return this.refuse(new AuthFailure('forbidden', 'The token does not grant access to this bucket'));
    }
    this.count(this.bucket, 'success');
    return { ok: true, token: verified };
  }

  private refuse(failure: AuthFailure): AuthOutcome {
    this.count(this.bucket, failure.kind);
    return { ok: false, error: authHttpError(failure) };
  }
}
