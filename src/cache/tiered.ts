import { readFile } from 'node:fs/promises';
import type { Logger } from '../observability/logger.js';
import type { CacheHit, CacheMeta, CacheTier, PurgeFilter, TierStats, TierWriter } from './types.js';
import type { PurgeBus, PurgeMessage } from './purge-bus.js';

export interface TierLookup {
  hit: CacheHit;
  tier: CacheTier;
}

export interface BucketCacheStats {
  hits: number;
  misses: number;
  stale: number;
  revalidated: number;
  bypass: number;
  bytes_from_cache: number;
  bytes_from_s3: number;
}

interface TierCounters {
  hits: number;
  misses: number;
  bytes_served: number;
}

/**
 * The tiers in `cache_layers` order behind one lookup/store/purge interface. Lookups go top-down and
 * a lower-tier hit is copied up after the response has started; stores go to every tier the object
 * fits, the lower tiers off the response path. Purges reach every tier and, through the bus, every
 * instance sharing the Redis.
 */
export class TieredCache {
  /** Parallel to `tiers`. */
  private readonly tierCounters: TierCounters[];
  private readonly buckets = new Map<string, BucketCacheStats>();
  /**
   * Bumped by every purge. A body fetched (or a hit read) before a purge must not be written after it:
   * writers capture the epoch first and drop their write when it has moved, and a purge waits for the
   * writes already under way, so nothing it removed can reappear.
   */
  private purgeEpoch = 0;
  private readonly pendingWrites = new Set<Promise<unknown>>();

  constructor(
    readonly tiers: readonly CacheTier[],
    private readonly log: Logger,
    private readonly bus: PurgeBus | null = null,
  ) {
    this.tierCounters = tiers.map(() => ({ hits: 0, misses: 0, bytes_served: 0 }));
    bus?.onMessage((message) => void this.applyRemote(message));
  }

  /** Largest body any tier would keep in full from memory (memory, redis). */
  get bufferLimit(): number {
    let limit = 0;
    for (const tier of this.tiers) if (!tier.openWriter) limit = Math.max(limit, tier.maxItemSize);
    return limit;
  }

  /**
   * Top-down through the tiers. Synchronous when the top tier holds the entry in process memory, so a
   * memory hit costs no promise.
   */
  lookup(key: string): TierLookup | null | Promise<TierLookup | null> {
    const top = this.tiers[0];
    if (top?.getSync && top.available) {
      const hit = top.getSync(key);
      if (hit) return this.found(hit, 0);
      this.tierCounters[0].misses++;
      return this.tiers.length > 1 ? this.lookupFrom(key, 1) : null;
    }
    return this.lookupFrom(key, 0);
  }

  private async lookupFrom(key: string, first: number): Promise<TierLookup | null> {
    for (let i = first; i < this.tiers.length; i++) {
      const tier = this.tiers[i];
      if (!tier.available) continue;
      let hit: CacheHit | null = null;
      try {
        hit = await tier.get(key);
      } catch (err) {
        this.log.warn({ err, tier: tier.name, key }, 'cache tier read failed');
      }
      if (hit) return this.found(hit, i);
      this.tierCounters[i].misses++;
    }
    return null;
  }

  private found(hit: CacheHit, index: number): TierLookup {
    const counters = this.tierCounters[index];
    counters.hits++;
    counters.bytes_served += hit.meta.size;
    if (index > 0) {
      const epoch = this.purgeEpoch;
      setImmediate(() => this.track(this.promote(hit, index, epoch)));
    }
    return { hit, tier: this.tiers[index] };
  }

  /** The purge epoch to capture before fetching a body that will be stored. */
  get epoch(): number {
    return this.purgeEpoch;
  }

  /**
   * Stores a complete body in every tier it fits: the first tier before returning, the rest after.
   * Nothing is stored if a purge ran since `epoch` was captured.
   */
  async store(meta: CacheMeta, body: Buffer, epoch: number): Promise<void> {
    if (epoch !== this.purgeEpoch) return;
    const targets = this.tiers.filter((tier) => tier.available && meta.size <= tier.maxItemSize);
    if (targets.length === 0) return;
    await this.track(this.safely(targets[0], 'write', () => targets[0].set(meta, body)));
    for (const tier of targets.slice(1)) {
      if (epoch !== this.purgeEpoch) return;
      void this.track(this.safely(tier, 'write', () => tier.set(meta, body)));
    }
  }

  /** Commits a streamed body (see TierWriter.commit), unless a purge ran since `epoch`. */
  async commit(writer: TierWriter, meta: CacheMeta, md5: string | undefined, epoch: number): Promise<boolean> {
    if (epoch !== this.purgeEpoch) {
      writer.abort();
      return false;
    }
    return this.track(writer.commit(meta, md5));
  }

  /** A tier that can take a body too large to hold in memory while it streams (disk). */
  streamingWriter(key: string, size: number): TierWriter | null {
    const tier = this.tiers.find((t) => t.openWriter && t.available && size <= t.maxItemSize);
    return tier?.openWriter?.(key) ?? null;
  }

  async updateMeta(meta: CacheMeta): Promise<void> {
    await Promise.all(this.tiers.map((tier) => this.safely(tier, 'update', () => tier.updateMeta(meta))));
  }

  async purge(filter: PurgeFilter): Promise<number> {
    await this.settleWrites();
    const counts = await Promise.all(this.tiers.map((tier) => this.safely(tier, 'purge', () => tier.purge(filter))));
    void this.bus?.publish({ op: 'purge', filter });
    return Math.max(0, ...counts.map((c) => c ?? 0));
  }

  async purgeKey(key: string): Promise<boolean> {
    await this.settleWrites();
    const results = await Promise.all(this.tiers.map((tier) => this.safely(tier, 'delete', () => tier.delete(key))));
    void this.bus?.publish({ op: 'purge', filter: {}, key });
    return results.some(Boolean);
  }

  async markStale(filter: PurgeFilter): Promise<number> {
    await this.settleWrites();
    const counts = await Promise.all(this.tiers.map((tier) => this.safely(tier, 'mark stale', () => tier.markStale(filter))));
    void this.bus?.publish({ op: 'stale', filter });
    return Math.max(0, ...counts.map((c) => c ?? 0));
  }

  /**
   * Soft purge of one entry: marks it stale in every tier that holds it, so the next request revalidates.
   * Other instances mark the object's key (as a prefix) stale in their own tiers.
   */
  async markStaleKey(key: string): Promise<boolean> {
    await this.settleWrites();
    let found: CacheMeta | null = null;
    const results = await Promise.all(
      this.tiers.map((tier) =>
        this.safely(tier, 'mark stale', async () => {
          const hit = await tier.get(key);
          if (!hit) return false;
          found = hit.meta;
          if (hit.meta.freshUntil !== 0) await tier.updateMeta({ ...hit.meta, freshUntil: 0 });
          return true;
        }),
      ),
    );
    const meta = found as CacheMeta | null;
    if (meta) void this.bus?.publish({ op: 'stale', filter: { bucket: meta.bucket, prefix: meta.objectKey } });
    return results.some(Boolean);
  }

  bucketStats(bucket: string): BucketCacheStats {
    let stats = this.buckets.get(bucket);
    if (!stats) {
      stats = { hits: 0, misses: 0, stale: 0, revalidated: 0, bypass: 0, bytes_from_cache: 0, bytes_from_s3: 0 };
      this.buckets.set(bucket, stats);
    }
    return stats;
  }

  stats() {
    const tiers: Record<string, TierStats & TierCounters & { hit_ratio: number; available: boolean }> = {};
    for (const [i, tier] of this.tiers.entries()) {
      const counters = this.tierCounters[i];
      const lookups = counters.hits + counters.misses;
      tiers[tier.name] = { ...tier.stats(), ...counters, hit_ratio: lookups ? counters.hits / lookups : 0, available: tier.available };
    }
    const buckets: Record<string, BucketCacheStats & { hit_ratio: number }> = {};
    for (const [name, s] of this.buckets) {
      const lookups = s.hits + s.misses + s.stale + s.revalidated;
      buckets[name] = { ...s, hit_ratio: lookups ? (s.hits + s.stale + s.revalidated) / lookups : 0 };
    }
    return { tiers, buckets };
  }

  /** Lets writes under way land first (a stopping instance, `karasu warm`), then closes the tiers. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.pendingWrites]);
    await this.bus?.close();
    await Promise.all(this.tiers.map((tier) => tier.close()));
  }

  private async promote(hit: CacheHit, foundAt: number, epoch: number): Promise<void> {
    if (epoch !== this.purgeEpoch) return;
    const upper = this.tiers.slice(0, foundAt).filter((tier) => tier.available && hit.meta.size <= tier.maxItemSize);
    if (upper.length === 0) return;
    const body = hit.body.kind === 'buffer' ? hit.body.data : await readFile(hit.body.path).catch(() => null);
    if (!body || body.length !== hit.meta.size) return;
    for (const tier of upper) {
      if (epoch !== this.purgeEpoch) return;
      await this.safely(tier, 'promote', () => tier.set(hit.meta, body));
    }
  }

  /** Another instance purged: apply it to this instance's own tiers, without publishing again. */
  private async applyRemote(message: PurgeMessage): Promise<void> {
    await this.settleWrites();
    const local = this.tiers.filter((tier) => tier.name !== 'redis');
    if (message.key !== undefined) await Promise.all(local.map((tier) => tier.delete(message.key!)));
    else if (message.op === 'stale') await Promise.all(local.map((tier) => tier.markStale(message.filter)));
    else await Promise.all(local.map((tier) => tier.purge(message.filter)));
    this.log.info({ op: message.op, filter: message.filter, key: message.key }, 'applied purge from another instance');
  }

  private track<T>(write: Promise<T>): Promise<T> {
    this.pendingWrites.add(write);
    void write.finally(() => this.pendingWrites.delete(write));
    return write;
  }

  /** Starts a new epoch and waits for the writes of the old one. */
  private async settleWrites(): Promise<void> {
    this.purgeEpoch++;
    await Promise.allSettled([...this.pendingWrites]);
  }

  private async safely<T>(tier: CacheTier, what: string, op: () => Promise<T>): Promise<T | null> {
    try {
      return await op();
    } catch (err) {
      this.log.warn({ err, tier: tier.name }, `cache tier ${what} failed`);
      return null;
    }
  }
}
