import type { BucketConfig, CacheConfig } from '../config/types.js';

const MB = 1024 * 1024;

/** A bucket's cache settings, resolved once per snapshot from the global and per-bucket config. */
export interface CachePolicy {
  defaultTtlMs: number;
  /** The bucket's `max_item_size_mb`: larger objects skip the cache whatever the tiers allow. */
  maxItemSize: number;
  staleWhileRevalidateMs: number;
  staleIfErrorMs: number;
}

export function cachePolicyFor(bucket: BucketConfig, cache: CacheConfig): CachePolicy | null {
  const enabled = bucket.cache.enabled ?? cache.enabled;
  if (!enabled || !cache.enabled) return null;
  return {
    defaultTtlMs: (bucket.cache.ttl_seconds ?? cache.memory.default_ttl_seconds) * 1000,
    maxItemSize: bucket.cache.max_item_size_mb === null ? Number.POSITIVE_INFINITY : Math.floor(bucket.cache.max_item_size_mb * MB),
    staleWhileRevalidateMs: cache.stale_while_revalidate_seconds * 1000,
    staleIfErrorMs: cache.stale_if_error_seconds * 1000,
  };
}

/** Cache-Control directives that matter to a shared cache, parsed once per upstream response. */
export interface ResponseDirectives {
  noStore: boolean;
  private: boolean;
  noCache: boolean;
  /** Seconds, from s-maxage, else max-age; null when neither is present. */
  maxAge: number | null;
}

export function parseCacheControl(value: string | undefined): ResponseDirectives {
  const result: ResponseDirectives = { noStore: false, private: false, noCache: false, maxAge: null };
  if (!value) return result;
  let maxAge: number | null = null;
  let sMaxAge: number | null = null;
  for (const part of value.toLowerCase().split(',')) {
    const [name, raw] = part.trim().split('=', 2) as [string, string | undefined];
    const seconds = raw === undefined ? NaN : Number(raw.replace(/"/g, ''));
    if (name === 'no-store') result.noStore = true;
    else if (name === 'private') result.private = true;
    else if (name === 'no-cache') result.noCache = true;
    else if (name === 'max-age' && Number.isFinite(seconds)) maxAge = Math.max(0, seconds);
    else if (name === 's-maxage' && Number.isFinite(seconds)) sMaxAge = Math.max(0, seconds);
  }
  result.maxAge = sMaxAge ?? maxAge;
  return result;
}

/** Whether a 200 may be stored at all (a shared cache never stores `no-store` or `private`). */
export function isStorable(directives: ResponseDirectives): boolean {
  return !directives.noStore && !directives.private;
}

/** How long a stored response stays fresh (RFC 9111 §4.2.1): s-maxage, max-age, Expires, else the configured TTL. */
export function freshnessMs(directives: ResponseDirectives, headers: Record<string, string>, policy: CachePolicy, now: number): number {
  if (directives.noCache) return 0;
  if (directives.maxAge !== null) return directives.maxAge * 1000;
  if (headers.expires !== undefined) {
    // An Expires that is not a valid date (e.g. "0") means "already expired" (RFC 9111 §5.3).
    const expires = Date.parse(headers.expires);
    return Number.isNaN(expires) ? 0 : Math.max(0, expires - now);
  }
  return policy.defaultTtlMs;
}
