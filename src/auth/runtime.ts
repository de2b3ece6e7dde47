// Authentication as part of a runtime snapshot: one verifier per JWT block in use (the top-level `jwt` is
// one verifier shared by every bucket that falls back to it, and by the admin API), key files read now,
// JWKS clients taken from the instance's registry (shared across reloads) with their first fetch awaited.
import { ConfigError } from '../config/issues.js';
import type { BucketAuthConfig, JwtConfig } from '../config/types-auth.js';
import type { KarasuConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { buildAdminAuth, type AdminAuth } from './admin.js';
import { BucketAuth, type AuthResult } from './bucket.js';
import { compileRules } from './claims.js';
import { JwksRegistry, type JwksClient, type JwksState } from './jwks.js';
import { KeyMaterialError, loadStaticKeys, type VerificationKey } from './keys.js';
import { TokenVerifier } from './verifier.js';

/**
 * Every JWT block that verifies something (buckets' and, with admin_claims, the top-level one), each once:
 * the top-level block is one object shared by the buckets that fall back to it.
 */
function blocksInUse(config: KarasuConfig): JwtConfig[] {
  const blocks = new Set<JwtConfig>();
  for (const bucket of config.buckets) if (bucket.auth) blocks.add(bucket.auth.jwt);
  if (config.jwt && config.jwt.admin_claims.length > 0) blocks.add(config.jwt);
  return [...blocks];
}

/** A key file that cannot be used, reported like a config error (`file: key.path: message`). */
async function keysOf(jwt: JwtConfig, config: KarasuConfig): Promise<VerificationKey[]> {
  try {
    return await loadStaticKeys(jwt);
  } catch (err) {
    if (!(err instanceof KeyMaterialError)) throw err;
    throw new ConfigError([{ path: err.path, message: err.message.slice(err.path.length + 2), file: config.source ?? '<config>', line: 0, column: 0 }]);
  }
}

/** `karasu check`: reads every key file the config names (no JWKS fetch). Throws ConfigError. */
export async function checkKeyFiles(config: KarasuConfig): Promise<void> {
  for (const jwt of blocksInUse(config)) await keysOf(jwt, config);
}

/** What a Karasu instance provides to every snapshot's authentication; lives as long as the instance. */
export interface AuthServices {
  readonly jwks: JwksRegistry;
  count(bucket: string, result: AuthResult): void;
  close(): void;
}

export interface AuthCounters {
  auth: { inc(labels: { bucket: string; result: string }): void };
  jwksRefresh: { inc(labels: { result: string }): void };
}

export function createAuthServices(counters: AuthCounters, log: Logger): AuthServices {
  const jwks = new JwksRegistry(log, { refreshed: (result) => counters.jwksRefresh.inc({ result }) });
  return {
    jwks,
    count: (bucket, result) => counters.auth.inc({ bucket, result }),
    close: () => jwks.close(),
  };
}

export interface SnapshotAuth {
  /** Buckets with `auth.enabled: true`, by name. */
  readonly buckets: ReadonlyMap<string, BucketAuth>;
  readonly admin: AdminAuth | null;
  /** The JWKS clients this snapshot verifies with (for /ready). */
  readonly jwks: readonly JwksClient[];
}

/** Reads key files and waits for first JWKS fetches; throws ConfigError for an unusable key file. */
export async function buildAuth(config: KarasuConfig, services: AuthServices): Promise<SnapshotAuth> {
  const verifiers = new Map<JwtConfig, TokenVerifier>();
  const verifierFor = async (jwt: JwtConfig): Promise<TokenVerifier> => {
    let verifier = verifiers.get(jwt);
    if (!verifier) {
      const keys = await keysOf(jwt, config);
      const jwks = jwt.jwks_url
        ? services.jwks.acquire({ url: jwt.jwks_url, refreshIntervalSecs: jwt.jwks_refresh_interval_secs, cooldownSecs: jwt.jwks_refresh_cooldown_secs })
        : null;
      verifier = new TokenVerifier(jwt, keys, jwks);
      verifiers.set(jwt, verifier);
    }
    return verifier;
  };

  const buckets = new Map<string, BucketAuth>();
  for (const bucket of config.buckets) {
    if (!bucket.auth) continue;
    const verifier = await verifierFor(bucket.auth.jwt);
    buckets.set(bucket.name, new BucketAuth(bucket.name, verifier, rulesOf(bucket.auth), services.count));
  }
  const global = config.jwt && config.jwt.admin_claims.length > 0 ? await verifierFor(config.jwt) : null;
  const admin = buildAdminAuth(config, global);

  const jwks = [...new Set([...verifiers.values()].flatMap((v) => (v.jwks ? [v.jwks] : [])))];
  // Serve with keys when the JWKS answers in time; a URL that is down is reported in /ready instead.
  await Promise.all(jwks.map((client) => client.settled()));
  services.jwks.retain(new Set(jwks));
  return { buckets, admin, jwks };
}

function rulesOf(auth: BucketAuthConfig) {
  return compileRules([...auth.jwt.claims, ...auth.claims]);
}

export interface AuthReadiness {
  /** State of each JWKS URL in use. */
  jwks: Record<string, JwksState>;
  /** Buckets that cannot verify any token: their only key source is a JWKS that never loaded. */
  unavailableBuckets: ReadonlySet<string>;
}

export function authReadiness(auth: SnapshotAuth): AuthReadiness {
  const jwks: Record<string, JwksState> = {};
  for (const client of auth.jwks) jwks[client.url] = client.state();
  const unavailableBuckets = new Set<string>();
  for (const [name, bucket] of auth.buckets) if (!bucket.verifier.usable()) unavailableBuckets.add(name);
  return { jwks, unavailableBuckets };
}
