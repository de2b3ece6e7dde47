// Verifying a token against one JWT block: pick the keys that may verify it (by `kid`, and only keys that
// allow the token's `alg`), check the signature with jose, then `exp`/`nbf` (with leeway), `iss`, `aud`.
// Verified tokens are kept in a bounded LRU keyed by the token string, so a hot path does not verify the
// same signature again; `exp` is re-checked on every hit. Claim rules are not part of this: they differ
// per bucket and the admin API, and they are cheap (bucket.ts, admin.ts).
import { KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { LRUCache } from 'lru-cache';
import type { JwtConfig } from '../config/types-auth.js';
import { algorithmsForKey, isSupportedAlgorithm, type JwtAlgorithm } from './algorithms.js';
import type { JwksClient } from './jwks.js';
import type { VerificationKey } from './keys.js';

export type AuthFailureKind = 'missing' | 'invalid' | 'expired' | 'forbidden' | 'unavailable';

export class AuthFailure extends Error {
  constructor(
    readonly kind: AuthFailureKind,
    message: string,
  ) {
    super(message);
    this.name = 'AuthFailure';
  }
}

export interface VerifiedToken {
  readonly claims: Readonly<JWTPayload>;
  /** The `sub` claim when it is a string. */
  readonly sub: string | null;
  /** `exp` in seconds, null when the token has none. */
  readonly exp: number | null;
}

interface CacheEntry {
  verified: VerifiedToken;
  /** ms epoch after which the entry is not used: `exp` + leeway, or a bound for tokens without `exp`. */
  until: number;
  /** True when `until` is the token's own expiry (a hit past it is "expired", not "verify again"). */
  expiring: boolean;
}

/** Tokens longer than this are refused unread (a header block is bounded anyway). */
const MAX_TOKEN_LENGTH = 16 * 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
/** A token without `exp` is verified again after this long (its key may have been rotated out). */
const NO_EXP_RECHECK_MS = 10 * 60 * 1000;

export interface VerifierOptions {
  /** Verified tokens kept (per JWT block); default 10,000. */
  cacheEntries?: number;
  /** Bytes of tokens and claims kept, approximately; default 32 MiB. */
  cacheBytes?: number;
}

export class TokenVerifier {
  private readonly cache: LRUCache<string, CacheEntry>;
  private readonly options: JWTVerifyOptions;
  private readonly leewayMs: number;

  constructor(
    readonly config: JwtConfig,
    private readonly staticKeys: readonly VerificationKey[],
    readonly jwks: JwksClient | null,
    opts: VerifierOptions = {},
  ) {
    this.cache = new LRUCache<string, CacheEntry>({
      max: opts.cacheEntries ?? 10_000,
      maxSize: opts.cacheBytes ?? 32 * 1024 * 1024,
      // The token string plus its parsed claims (a few times the payload's size).
      sizeCalculation: (_value, token) => token.length * 4 + 256,
    });
    this.leewayMs = config.leeway_seconds * 1000;
    this.options = {
      clockTolerance: config.leeway_seconds,
      ...(config.issuer !== null ? { issuer: config.issuer } : {}),
      ...(config.audience.length > 0 ? { audience: config.audience } : {}),
    };
  }

  /** False when there is no key at all yet (only a JWKS URL, never loaded). */
  usable(): boolean {
    return this.staticKeys.length > 0 || (this.jwks?.hasKeys() ?? false);
  }

  /**
   * The verification of a token seen before and still valid, synchronously (the cache-hit path pays no
   * promise for it); null when the token must go through verify().
   */
  cached(token: string): VerifiedToken | null {
    const hit = this.cache.get(token);
    return hit !== undefined && Date.now() <= hit.until ? hit.verified : null;
  }

  /** Throws AuthFailure (invalid, expired, unavailable). */
  async verify(token: string): Promise<VerifiedToken> {
    const hit = this.cache.get(token);
    if (hit) {
      if (Date.now() <= hit.until) return hit.verified;
      this.cache.delete(token);
      if (hit.expiring) throw new AuthFailure('expired', 'The token has expired');
    }
    const verified = await this.verifySignature(token);
    const exp = verified.exp;
    this.cache.set(token, {
      verified,
      until: exp !== null ? exp * 1000 + this.leewayMs : Date.now() + NO_EXP_RECHECK_MS,
      expiring: exp !== null,
    });
    return verified;
  }

  private async verifySignature(token: string): Promise<VerifiedToken> {
    if (token.length > MAX_TOKEN_LENGTH || !COMPACT_JWS.test(token)) throw new AuthFailure('invalid', 'The token is not a signed JWT');
    let header: { alg?: unknown; kid?: unknown };
    try {
      header = decodeProtectedHeader(token);
    } catch {
      throw new AuthFailure('invalid', 'The token header cannot be read');
    }
    const alg = header.alg;
    // `none`, and anything not in the list (HS256 and friends only where a key allows them: see below).
    if (!isSupportedAlgorithm(alg)) throw new AuthFailure('invalid', `The token algorithm ${JSON.stringify(alg)} is not accepted`);
    const kid = typeof header.kid === 'string' ? header.kid : null;

    let candidates = this.candidates(kid, alg);
    if (candidates.length === 0 && this.jwks && (kid !== null ? !this.knows(kid) : !this.jwks.hasKeys())) {
      // A key published since the last fetch (rotation), or a set never loaded: fetch again (cool-down).
      if (await this.jwks.refreshForUnknownKid()) candidates = this.candidates(kid, alg);
    }
    if (candidates.length === 0) {
      if (!this.usable()) throw new AuthFailure('unavailable', 'The keys to verify tokens are not available yet');
      throw new AuthFailure('invalid', kid !== null ? 'No key matches the token’s key id' : `No key accepts the token algorithm ${alg}`);
    }

    for (const key of candidates) {
      try {
        // One clock (Date.now) for jose and the cache's exp re-check.
        const { payload } = await jwtVerify(token, key.key, { ...this.options, algorithms: [alg], currentDate: new Date(Date.now()) });
        return { claims: payload, sub: typeof payload.sub === 'string' ? payload.sub : null, exp: typeof payload.exp === 'number' ? payload.exp : null };
      } catch (err) {
        // The signature was good (claims are checked after it): no other key changes the answer.
        if (err instanceof errors.JWTExpired) throw new AuthFailure('expired', 'The token has expired');
        if (err instanceof errors.JWTClaimValidationFailed) throw new AuthFailure('invalid', claimMessage(err));
        if (err instanceof errors.JWTInvalid) throw new AuthFailure('invalid', 'The token payload is not a JSON claims set');
        // A bad signature (or a key jose refuses): try the next candidate.
      }
    }
    throw new AuthFailure('invalid', 'The token signature is invalid');
  }

  /**
   * Keys that may verify this token. With a `kid`: the keys with that id; if none has it, the keys without
   * an id (the block's single key). Without a `kid`: every key. Always only keys allowing `alg`.
   */
  private candidates(kid: string | null, alg: JwtAlgorithm): VerificationKey[] {
    const pool: VerificationKey[] = [...this.staticKeys, ...(this.jwks?.all() ?? [])];
    const fits = (k: VerificationKey) => this.allows(k, alg);
    if (kid === null) return pool.filter(fits);
    const named = pool.filter((k) => k.kid === kid);
    if (named.length > 0) return named.filter(fits);
    return pool.filter((k) => k.kid === null && fits(k));
  }

  /** Some key has this id (then a refetch cannot help: the token's algorithm does not fit it). */
  private knows(kid: string): boolean {
    return this.staticKeys.some((k) => k.kid === kid) || (this.jwks?.withKid(kid).length ?? 0) > 0;
  }

  /** A JWKS key that names no `alg` is narrowed to the block's `algorithm` when that fits its type. */
  private allows(key: VerificationKey, alg: JwtAlgorithm): boolean {
    if (!key.algorithms.has(alg)) return false;
    const hint = this.config.algorithm;
    if (!key.inferred || hint === null || !(key.key instanceof KeyObject)) return true;
    return algorithmsForKey(key.key).includes(hint) ? alg === hint : true;
  }
}

function claimMessage(err: InstanceType<typeof errors.JWTClaimValidationFailed>): string {
  switch (err.claim) {
    case 'nbf':
      return 'The token is not valid yet (nbf)';
    case 'iss':
      return 'The token issuer is not accepted';
    case 'aud':
      return 'The token audience is not accepted';
    default:
      return `The token claim ${err.claim} is invalid`;
  }
}
