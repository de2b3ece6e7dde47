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
): Promise<Snapshot> {
  const buckets = new Map<string, BucketRuntime>();
  for (const bucket of config.buckets) {
    buckets.set(bucket.name, {
      config: bucket,
      upstream: new ReplicaSet(bucket, events, hooks),
      cors: bucket.cors ? buildCorsPolicy(bucket.cors) : null,
      cachePolicy: cacheRunning ? cachePolicyFor(bucket, config.cache) : null,
    });
  }
  const router = buildRouter([...buckets.values()].map((b) => [b.config.path_prefix, b] as const));
  return { config, generation, router, buckets, inflight: 0, retired: false };
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
