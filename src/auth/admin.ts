// JWT authentication for the admin API: a token from the top-level `jwt` token sources, verified with
// the top-level `jwt` keys (signature, exp/nbf, iss/aud), that passes every `jwt.admin_claims` rule.
// The bucket `claims` rules do not apply here. Built with each snapshot (runtime.ts) and reached as
// `snapshot.adminAuth`; null when JWTs cannot grant admin access: no top-level `jwt`, or no
// `admin_claims` (PRODUCT §5: the admin API then needs the static token, or answers loopback only —
// Yatagarasu instead let any valid JWT in when `admin_claims` was empty).
import type { IncomingMessage } from 'node:http';
import type { KarasuConfig } from '../config/types.js';
import { compileRules, firstFailingRule, type CompiledRule } from './claims.js';
import { authHttpError, missingToken } from './http.js';
import { extractToken } from './tokens.js';
import { AuthFailure, type TokenVerifier } from './verifier.js';

export interface AdminAuth {
  /**
   * Resolves with the caller's `sub` when the request carries an admin token; throws HttpError 401
   * (no token / invalid / expired, with `WWW-Authenticate`), 403 (valid, fails `admin_claims`) or 503
   * (keys not loaded yet).
   */
  authenticate(req: IncomingMessage): Promise<{ sub: string | null }>;
  /** True when the request carries a token in one of the configured sources (to choose between admin auth schemes). */
  hasToken(req: IncomingMessage): boolean;
}

/** `verifier`: the top-level `jwt` block's verifier (shared with the buckets that use that block). */
export function buildAdminAuth(config: KarasuConfig, verifier: TokenVerifier | null): AdminAuth | null {
  const jwt = config.jwt;
  if (!jwt || jwt.admin_claims.length === 0 || !verifier) return null;
  const rules: readonly CompiledRule[] = compileRules(jwt.admin_claims);
  return {
    hasToken: (req) => extractToken(req, jwt.token_sources) !== null,
    async authenticate(req) {
      const token = extractToken(req, jwt.token_sources);
      if (token === null) throw authHttpError(missingToken());
      try {
        const verified = await verifier.verify(token);
        if (firstFailingRule(verified.claims, rules) !== null) {
          throw new AuthFailure('forbidden', 'The token does not grant admin access');
        }
        return { sub: verified.sub };
      } catch (err) {
        if (err instanceof AuthFailure) throw authHttpError(err);
        throw err;
      }
    },
  };
}
