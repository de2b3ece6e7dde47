import { randomUUID } from 'node:crypto';
import type { CacheConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { createAdmission } from './admission.js';
import type { PurgeBus } from './purge-bus.js';
import { TieredCache } from './tiered.js';
import { DiskTier } from './tiers/disk.js';
import { MemoryTier } from './tiers/memory.js';
import type { CacheTier } from './types.js';

/** Sizes are configured in (possibly fractional) MB; tiers count whole bytes. */
const mb = (value: number): number => Math.floor(value * 1024 * 1024);
/** Average entry size assumed to size the admission sketch; only its accuracy depends on it. */
const TYPICAL_ENTRY_BYTES = 32 * 1024;

/** Builds the tiers `cache.cache_layers` names, in that order. Null when caching is off. */
export async function createCache(config: CacheConfig, log: Logger): Promise<TieredCache | null> {
  if (!config.enabled) return null;
  const tiers: CacheTier[] = [];
  let bus: PurgeBus | null = null;
  const staleKeepSeconds = Math.max(config.stale_while_revalidate_seconds, config.stale_if_error_seconds, config.memory.default_ttl_seconds);
  for (const layer of config.cache_layers) {
    if (layer === 'memory') {
      const maxBytes = mb(config.memory.max_cache_size_mb);
      const admission = createAdmission(Math.ceil(maxBytes / TYPICAL_ENTRY_BYTES));
      tiers.push(new MemoryTier(maxBytes, mb(config.memory.max_item_size_mb), admission));
    } else if (layer === 'disk') {
      tiers.push(
        await DiskTier.open({
          dir: config.disk.cache_dir,
          maxBytes: mb(config.disk.max_disk_cache_size_mb),
          maxItemSize: mb(config.disk.max_item_size_mb),
          log: log.child({ tier: 'disk' }),
        }),
      );
    } else {
      // ioredis (about 2 MB of heap) is loaded only when a Redis tier is configured.
      const [{ RedisTier }, { PurgeBus }] = await Promise.all([import('./tiers/redis.js'), import('./purge-bus.js')]);
      const redis = config.redis;
      const common = { url: redis.redis_url!, password: redis.redis_password, db: redis.redis_db, log: log.child({ tier: 'redis' }) };
      tiers.push(
        new RedisTier({
          ...common,
          keyPrefix: redis.redis_key_prefix,
          ttlSeconds: redis.redis_ttl_seconds,
          maxItemSize: mb(redis.max_item_size_mb),
          timeoutMs: redis.timeout_ms,
          staleKeepSeconds,
        }),
      );
      bus = PurgeBus.create({ ...common, channel: `${redis.redis_key_prefix}purge`, instanceId: randomUUID(), timeoutMs: redis.timeout_ms });
    }
  }
  return new TieredCache(tiers, log.child({ component: 'cache' }), bus);
}

/** Cache settings that shape the tiers themselves; changing them takes a restart. */
export function cacheShape(config: CacheConfig): string {
  const { enabled, cache_layers, memory, disk, redis } = config;
  return JSON.stringify({ enabled, cache_layers, memory: [memory.max_cache_size_mb, memory.max_item_size_mb], disk, redis });
}
