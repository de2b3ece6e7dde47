// The contract between the cache phase and its tiers. A tier stores complete 200 responses to GET:
// the representation headers Karasu forwards, and the body.

import type { Readable } from 'node:stream';
import type { CacheLayer } from '../config/types.js';
import type { ByteRange } from '../http/range.js';

export interface CacheMeta {
  /** `${bucket}:${objectKey}` — bucket is the Karasu bucket *name* from the config, never the Host. */
  key: string;
  bucket: string;
  objectKey: string;
  /** Representation headers as sent to clients (http/headers.ts objectHeaders), without Content-Length. */
  headers: Record<string, string>;
  size: number;
  etag: string | null;
  lastModified: string | null;
  /** ms since the epoch. */
  storedAt: number;
  /** ms since the epoch; after this the entry must be revalidated before it is served as fresh. */
  freshUntil: number;
  /** Hex SHA-256 of the body: verified when a tier reads the body back from outside the process. */
  sha256: string;
}

export type CachedBody =
  | { kind: 'buffer'; data: Buffer }
  /**
   * A committed file; `path` stays valid until the entry is deleted (readers open it at once). `open`
   * streams it through the tier, which verifies a whole-file read and drops the entry if it is corrupt.
   */
  | { kind: 'file'; path: string; open(range: ByteRange | null): Readable };

export interface CacheHit {
  meta: CacheMeta;
  body: CachedBody;
}

export interface TierStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  evictions: number;
  /** Entries found corrupt on read and dropped (disk, redis). */
  corrupt: number;
  /** Operations that failed or timed out (redis). */
  errors: number;
}

/** Streams a large body into a tier while it is also streaming to clients (disk). */
export interface TierWriter {
  /** The temporary file being written: readable up to what `write()` has resolved for. */
  readonly path: string;
  /** Resolves once the chunk is in the file (so a reader of `path` can read it). */
  write(chunk: Buffer): Promise<void>;
  /**
   * Makes the entry visible atomically — only when the byte count equals `meta.size` and the body's
   * SHA-256 is `meta.sha256` (and, when `md5` is given, its MD5 hex matches too). Otherwise discards
   * and resolves false. Never leaves a partial entry readable.
   */
  commit(meta: CacheMeta, md5?: string): Promise<boolean>;
  /**
   * SHA-256 and MD5 (hex) of every byte written so far: a filler that streams a body through the writer
   * takes them from here instead of hashing the body a second time. Call once the last write resolved.
   */
  digests(): { sha256: string; md5: string };
  abort(): void;
}

export interface PurgeFilter {
  /** Karasu bucket name; absent = every bucket. */
  bucket?: string;
  /** Object key prefix within the bucket (requires bucket). */
  prefix?: string;
}

export interface CacheTier {
  readonly name: CacheLayer;
  /** Bodies larger than this skip the tier. */
  readonly maxItemSize: number;
  /** A miss, a corrupt entry (dropped and counted) and an unavailable tier all return null. */
  get(key: string): Promise<CacheHit | null>;
  /** The same answer without I/O, for tiers held in process memory. */
  getSync?(key: string): CacheHit | null;
  set(meta: CacheMeta, body: Buffer): Promise<void>;
  /** Only tiers that can take bodies too large for memory (disk). */
  openWriter?(key: string): TierWriter;
  /** Replaces the metadata of an existing entry (revalidation, soft purge); no-op when absent. */
  updateMeta(meta: CacheMeta): Promise<void>;
  delete(key: string): Promise<boolean>;
  /** Deletes matching entries; returns how many. Empty filter = everything. */
  purge(filter: PurgeFilter): Promise<number>;
  /** Marks matching entries stale (freshUntil = 0) so they revalidate; returns how many. */
  markStale(filter: PurgeFilter): Promise<number>;
  stats(): TierStats;
  /** Whether the tier can serve now (redis: connected). */
  readonly available: boolean;
  close(): Promise<void>;
}

export function cacheKey(bucket: string, objectKey: string): string {
  return `${bucket}:${objectKey}`;
}

export function matchesFilter(meta: Pick<CacheMeta, 'bucket' | 'objectKey'>, filter: PurgeFilter): boolean {
  if (filter.bucket !== undefined && meta.bucket !== filter.bucket) return false;
  if (filter.prefix !== undefined && !meta.objectKey.startsWith(filter.prefix)) return false;
  return true;
}
