// The validated JWT settings (top-level `jwt`, `buckets[].auth`). See docs/authentication.md.
import type { JwtAlgorithm } from '../auth/algorithms.js';
import type { ClaimRule } from '../auth/claims.js';

export type { JwtAlgorithm, ClaimRule };

export interface JwtConfig {
  /** Where the block is written (`jwt` or `buckets[N].auth.jwt`), for messages about its files and keys. */
  path: string;
  /** The algorithm of the single key (`secret` or a PEM path); with JWKS, assumed for keys that name none. */
  algorithm: JwtAlgorithm | null;
  secret: string | null;
  rsa_public_key_path: string | null;
  ecdsa_public_key_path: string | null;
  /** Ours: any PEM public key (RSA, EC, Ed25519). */
  public_key_path: string | null;
  keys: JwtKeyConfig[];
  jwks_url: string | null;
  jwks_refresh_interval_secs: number;
  /** Ours: least seconds between refreshes triggered by an unknown `kid`. */
  jwks_refresh_cooldown_secs: number;
  /** At least one; default `[{type: 'bearer'}]`. */
  token_sources: TokenSourceConfig[];
  claims: ClaimRule[];
  /** Top-level block only (empty in a bucket's block). */
  admin_claims: ClaimRule[];
  /** Ours: required `iss`. */
  issuer: string | null;
  /** Ours: the token's `aud` must contain one of these (empty: not checked). */
  audience: string[];
  /** Ours: seconds of clock skew allowed for `exp`/`nbf`. */
  leeway_seconds: number;
}

export interface JwtKeyConfig {
  id: string;
  algorithm: JwtAlgorithm;
  /** Exactly one of `secret` (HS*) and `path` (PEM, the other algorithms). */
  secret: string | null;
  path: string | null;
}

export type TokenSourceConfig =
  | { type: 'bearer' }
  | { type: 'header'; name: string; prefix: string | null }
  | { type: 'query'; name: string };

/** A bucket that requires a JWT (`auth.enabled: true`). */
export interface BucketAuthConfig {
  /** The bucket's own `auth.jwt`, or the top-level `jwt`. */
  jwt: JwtConfig;
  /** `auth.claims_verification`: rules ANDed after `jwt.claims`. */
  claims: ClaimRule[];
}
