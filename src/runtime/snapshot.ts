import type { AdminAuth } from '../auth/admin.js';
import type { BucketAuth } from '../auth/bucket.js';
import { buildAuth, type AuthServices, type SnapshotAuth } from '../auth/runtime.js';
import { cachePolicyFor, type CachePolicy } from '../cache/policy.js';
import type { BucketConfig, KarasuConfig } from '../config/types.js';
import { buildCorsPolicy, type CorsPolicy } from '../http/cors.js';
import { buildRouter, type Router } from '../routing/router.js';
import { ReplicaSet, type UpstreamEvents } from '../upstream/replica-set.js';
import type { ClientTestHooks } from '../upstream/s3-client.js';

export interface BucketRuntime {
  config: BucketConfig;
  upstream: ReplicaSet;
  cors: CorsPolicy | null;
  /** Null when this bucket is not cached (cache off, or `buckets[].cache.enabled: false`). */
  cachePolicy: CachePolicy | null;
  /** Null when the bucket is public (no `auth`, or `auth.enabled: false`). */
  auth: BucketAuth | null;
}

/**
 * Everything a request needs from the configuration, built in full before it is swapped in: a reload
 * replaces the whole snapshot at once, and a request keeps the snapshot it started with.
 */
export interface Snapshot {
  readonly config: KarasuConfig;
  readonly generation: number;
  readonly router: Router<BucketRuntime>;
  readonly buckets: ReadonlyMap<string, BucketRuntime>;
  /** JWT authentication of the admin API (`jwt.admin_claims`); null when JWTs grant no admin access. */
  readonly adminAuth: AdminAuth | null;
  /** Authentication state of this snapshot (JWKS clients, per-bucket verifiers) for /ready. */
  readonly auth: SnapshotAuth;
  /** Requests still running on this snapshot; its upstream clients close when it is retired and idle. */
  inflight: number;
  retired: boolean;
}

/** Async: building may read files or fetch key sets before the snapshot can serve. */
export async function buildSnapshot(
  config: KarasuConfig,
  generation: number,
  events: UpstreamEvents,
  cacheRunning: boolean,
  hooks?: ClientTestHooks,
  authServices?: AuthServices,
): Promise<Snapshot> {
  // First: it reads key files and awaits first JWKS fetches, and may fail before any client is opened.
  const auth = await buildAuthFor(config, authServices);
  const buckets = new Map<string, BucketRuntime>();
  for (const bucket of config.buckets) {
    buckets.set(bucket.name, {
      config: bucket,
      upstream: new ReplicaSet(bucket, events, hooks),
      cors: bucket.cors ? buildCorsPolicy(bucket.cors) : null,
      cachePolicy: cacheRunning ? cachePolicyFor(bucket, config.cache) : null,
      auth: auth.buckets.get(bucket.name) ?? null,
    });
  }
  const router = buildRouter([...buckets.values()].map((b) => [b.config.path_prefix, b] as const));
  return { config, generation, router, buckets, adminAuth: auth.admin, auth, inflight: 0, retired: false };
}

async function buildAuthFor(config: KarasuConfig, services: AuthServices | undefined): Promise<SnapshotAuth> {
  const needed = config.jwt !== null || config.buckets.some((b) => b.auth !== null);
  if (!needed || !services) {
    if (needed) throw new Error('buildSnapshot: JWT settings need AuthServices');
    services?.jwks.retain(new Set()); // a reload that drops every JWKS URL stops their clients
    return { buckets: new Map(), admin: null, jwks: [] };
  }
  return buildAuth(config, services);
}

export function closeSnapshot(snapshot: Snapshot): void {
  for (const bucket of snapshot.buckets.values()) bucket.upstream.close();
}

/** Marks a snapshot replaced; its clients close once its last request ends. */
export function retireSnapshot(snapshot: Snapshot): void {
  snapshot.retired = true;
  if (snapshot.inflight === 0) closeSnapshot(snapshot);
}

export function releaseSnapshot(snapshot: Snapshot): void {
  if (--snapshot.inflight === 0 && snapshot.retired) closeSnapshot(snapshot);
}
