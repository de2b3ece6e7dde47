import { LRUCache } from 'lru-cache';
import type { CacheHit, CacheMeta, CacheTier, PurgeFilter, TierStats } from '../types.js';
import { matchesFilter } from '../types.js';
import type { Admission } from '../admission.js';

interface Stored {
  meta: CacheMeta;
  body: { kind: 'buffer'; data: Buffer };
}

/** Per-entry bookkeeping the byte budget must include besides the body (keys, headers, objects). */
const ENTRY_OVERHEAD = 512;

/**
 * In-process tier: lru-cache bounded in bytes, with an admission filter in front so one-off objects
 * do not push out frequently requested ones. Freshness lives in the entry's metadata, not in an LRU
 * TTL, so an expired entry stays available for revalidation until space is needed.
 */
export class MemoryTier implements CacheTier {
  readonly name = 'memory' as const;
  readonly available = true;
  private readonly lru: LRUCache<string, Stored>;
  private evictions = 0;

  constructor(
    private readonly maxBytes: number,
    readonly maxItemSize: number,
    private readonly admission: Admission | null = null,
  ) {
    this.lru = new LRUCache<string, Stored>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => entry.body.data.length + ENTRY_OVERHEAD,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict') this.evictions++;
      },
    });
  }

  async get(key: string): Promise<CacheHit | null> {
    this.admission?.record(key);
    return this.lru.get(key) ?? null;
  }

  async set(meta: CacheMeta, body: Buffer): Promise<void> {
    const size = body.length + ENTRY_OVERHEAD;
    if (body.length > this.maxItemSize || size > this.maxBytes) return;
    if (this.admission && !this.lru.has(meta.key) && !this.admission.admit(meta.key, size, this.victims(size), this.sizeOf)) return;
    this.lru.set(meta.key, { meta, body: { kind: 'buffer', data: body } });
  }

  async updateMeta(meta: CacheMeta): Promise<void> {
    const entry = this.lru.peek(meta.key);
    if (entry) entry.meta = meta;
  }

  async delete(key: string): Promise<boolean> {
    return this.lru.delete(key);
  }

  async purge(filter: PurgeFilter): Promise<number> {
    if (filter.bucket === undefined) {
      const count = this.lru.size;
      this.lru.clear();
      return count;
    }
    let count = 0;
    for (const [key, entry] of this.lru.entries()) {
      if (matchesFilter(entry.meta, filter)) {
        this.lru.delete(key);
        count++;
      }
    }
    return count;
  }

  async markStale(filter: PurgeFilter): Promise<number> {
    let count = 0;
    for (const entry of this.lru.values()) {
      if (matchesFilter(entry.meta, filter)) {
        entry.meta = { ...entry.meta, freshUntil: 0 };
        count++;
      }
    }
    return count;
  }

  stats(): TierStats {
    return { entries: this.lru.size, bytes: this.lru.calculatedSize, maxBytes: this.maxBytes, evictions: this.evictions, corrupt: 0, errors: 0 };
  }

  async close(): Promise<void> {
    this.lru.clear();
  }

  private readonly sizeOf = (key: string): number => {
    const entry = this.lru.peek(key);
    return entry ? entry.body.data.length + ENTRY_OVERHEAD : 0;
  };

  /** Keys that would be evicted (least recently used first) to make room for `size` bytes. */
  private *victims(size: number): Generator<string> {
    let free = this.maxBytes - this.lru.calculatedSize;
    if (free >= size) return;
    for (const key of this.lru.rkeys()) {
      yield key;
      free += this.sizeOf(key);
      if (free >= size) return;
    }
  }
}
