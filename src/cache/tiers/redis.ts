// Redis tier: shared by every Karasu instance pointing at the same Redis. Failure is soft — while Redis is
// down or slow the tier answers "miss" / no-op at once, and the client reconnects by itself forever.
//
// Value layout (one binary string): [4-byte BE meta-JSON length][meta JSON][body]. The body is verified
// against meta.size and meta.sha256 on every read, since anyone with access to Redis can write to it.

import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { matchesFilter, type CacheHit, type CacheMeta, type CacheTier, type PurgeFilter, type TierStats } from '../types.js';

export interface TierLog {
  warn(o: object, m: string): void;
  info(o: object, m: string): void;
}

export interface RedisTierOptions {
  url: string;
  password?: string | null;
  db: number;
  keyPrefix: string;
  /** Longest freshness kept in Redis; the TTL is at most ttlSeconds + staleKeepSeconds. */
  ttlSeconds: number;
  maxItemSize: number;
  timeoutMs: number;
  /** Kept past freshUntil so an expired entry can still be revalidated or served stale. */
  staleKeepSeconds: number;
  log?: TierLog;
}

export type RedisTierStatus = 'connected' | 'connecting' | 'down';

/** Redis keys above this many bytes are replaced by a hash (long keys are slow to compare and hash). */
const MAX_KEY_BYTES = 250;
/** First read of an entry's header (purge / markStale / updateMeta); longer metas take a second read. */
const HEAD_READ = 4096;
/** Sanity bound on the meta-JSON length, so a garbage value cannot make us read a huge range. */
const MAX_META_BYTES = 1 << 20;
const SCAN_COUNT = 500;

const noLog: TierLog = { warn() {}, info() {} };

/** Capped exponential backoff with jitter; never gives up (returning a number always retries). */
export function reconnectDelay(times: number): number {
  return Math.min(100 * 2 ** Math.min(times - 1, 5), 2000) + Math.floor(Math.random() * 100);
}

/**
 * Connection options for a Redis used as an optional dependency: commands fail at once while disconnected
 * (no offline queue, no retries of a command), each command is bounded by `timeoutMs`, and a connection
 * that stops answering while commands are pending is dropped and re-established.
 */
export function softRedisOptions(o: { password?: string | null; db: number; timeoutMs: number }): RedisOptions {
  return {
    password: o.password ?? undefined,
    db: o.db,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: o.timeoutMs,
    connectTimeout: Math.max(o.timeoutMs * 5, 1000),
    socketTimeout: Math.max(o.timeoutMs * 5, 2000),
    retryStrategy: reconnectDelay,
  };
}

export function sha256hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Escapes Redis glob metacharacters so bucket names and prefixes match literally in SCAN MATCH. */
export function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

function encodeHeader(meta: CacheMeta): Buffer {
  const json = Buffer.from(JSON.stringify(meta));
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(json.length);
  return Buffer.concat([head, json]);
}

/** Parses the header at the start of `buf`; null when it is missing, truncated or not a meta object. */
function decodeHeader(buf: Buffer): { meta: CacheMeta; headerLen: number } | null {
  if (buf.length < 4) return null;
  const headerLen = 4 + buf.readUInt32BE(0);
  if (headerLen > buf.length || headerLen - 4 > MAX_META_BYTES) return null;
  try {
    const meta = JSON.parse(buf.subarray(4, headerLen).toString('utf8')) as CacheMeta;
    const ok =
      meta !== null &&
      typeof meta === 'object' &&
      typeof meta.key === 'string' &&
      typeof meta.bucket === 'string' &&
      typeof meta.objectKey === 'string' &&
      typeof meta.size === 'number' &&
      typeof meta.sha256 === 'string' &&
      typeof meta.freshUntil === 'number';
    return ok ? { meta, headerLen } : null;
  } catch {
    return null;
  }
}

// Replaces an entry's header without moving its body through Karasu, and only if the header is still the
// one we read (compare-and-set: a concurrent rewrite of the entry wins). The TTL is only ever extended
// (ARGV[3] > current PTTL), otherwise kept — so a soft purge never shortens how long the stale copy lives.
const REWRITE_HEADER_LUA = `
local old = ARGV[1]
if redis.call('GETRANGE', KEYS[1], 0, #old - 1) ~= old then return 0 end
local value = ARGV[2] .. redis.call('GETRANGE', KEYS[1], #old, -1)
local ttl = tonumber(ARGV[3])
if ttl > 0 and ttl > redis.call('PTTL', KEYS[1]) then
  redis.call('SET', KEYS[1], value, 'PX', ttl)
else
  redis.call('SET', KEYS[1], value, 'KEEPTTL')
end
return 1
`;

type WithRewrite = Redis & {
  karasuRewriteHeader(key: Buffer | string, oldHeader: Buffer, newHeader: Buffer, ttlMs: number): Promise<number>;
};

interface Located {
  rkey: Buffer | string;
  meta: CacheMeta;
  header: Buffer;
}

export class RedisTier implements CacheTier {
  readonly name = 'redis' as const;
  readonly maxItemSize: number;
  private readonly client: WithRewrite;
  private readonly log: TierLog;
  private state: RedisTierStatus = 'connecting';
  private lastError: string | undefined;
  private closing = false;
  // Approximate by design: the net of what *this process* wrote and deleted. Entries expiring by TTL and
  // writes by other instances are not seen (counting them would need a SCAN of the whole prefix).
  private entries = 0;
  private bytes = 0;
  private corrupt = 0;
  private errors = 0;

  constructor(private readonly opts: RedisTierOptions) {
    this.maxItemSize = opts.maxItemSize;
    this.log = opts.log ?? noLog;
    this.client = new Redis(opts.url, { ...softRedisOptions(opts), connectionName: 'karasu-cache' }) as WithRewrite;
    this.client.defineCommand('karasuRewriteHeader', { numberOfKeys: 1, lua: REWRITE_HEADER_LUA });
    this.client.on('ready', () => this.setState('connected'));
    // 'close' follows every lost connection and every failed attempt; setState logs only the transition.
    this.client.on('close', () => this.setState('down'));
    // Without a listener ioredis prints every connection error; the message is kept for the state log.
    this.client.on('error', (err: Error) => (this.lastError = err.message));
  }

  get available(): boolean {
    return this.state === 'connected' && this.client.status === 'ready';
  }

  status(): RedisTierStatus {
    return this.available ? 'connected' : this.state === 'connected' ? 'down' : this.state;
  }

  async get(key: string): Promise<CacheHit | null> {
    const rkey = this.redisKey(key);
    const raw = await this.run(() => this.client.getBuffer(rkey), null);
    if (!raw) return null;
    const head = decodeHeader(raw);
    const body = head ? raw.subarray(head.headerLen) : undefined;
    if (!head || !body || head.meta.key !== key || body.length !== head.meta.size || sha256hex(body) !== head.meta.sha256) {
      this.corrupt++;
      this.log.warn({ tier: 'redis', key }, 'corrupt redis cache entry dropped');
      await this.run(() => this.unlink([rkey]), 0);
      return null;
    }
    return { meta: head.meta, body: { kind: 'buffer', data: body } };
  }

  async set(meta: CacheMeta, body: Buffer): Promise<void> {
    if (body.length > this.maxItemSize || body.length !== meta.size) return;
    const rkey = this.redisKey(meta.key);
    const value = Buffer.concat([encodeHeader(meta), body]);
    await this.run(async () => {
      // STRLEN first (same round trip) so overwrites don't inflate the approximate entry count.
      const res = await this.client.pipeline().strlen(rkey).set(rkey, value, 'PX', this.ttlMs(meta.freshUntil)).exec();
      const err = res?.find(([e]) => e)?.[0];
      if (err) throw err;
      const before = Number(res![0][1]);
      if (before === 0) this.entries++;
      this.bytes += value.length - before;
    }, undefined);
  }

  async updateMeta(meta: CacheMeta): Promise<void> {
    await this.run(async () => {
      const [cur] = await this.readHeaders([this.redisKey(meta.key)]);
      if (!cur || cur.meta.key !== meta.key) return;
      // The stored body must be the one the new meta describes, or every later read would be "corrupt".
      if (cur.meta.size !== meta.size || cur.meta.sha256 !== meta.sha256) {
        await this.unlink([cur.rkey]);
        return;
      }
      await this.rewrite(cur, meta, this.ttlMs(meta.freshUntil));
    }, undefined);
  }

  async delete(key: string): Promise<boolean> {
    return (await this.run(() => this.unlink([this.redisKey(key)]), 0)) > 0;
  }

  async purge(filter: PurgeFilter): Promise<number> {
    let n = 0;
    await this.run(async () => {
      if (filter.bucket === undefined && filter.prefix === undefined) {
        await this.scan(`${globEscape(this.opts.keyPrefix)}*`, async (keys) => void (n += await this.unlink(keys)));
        return;
      }
      // Names alone are not proof (hashed long keys; a bucket name may contain ':'), so check each meta.
      for (const pattern of this.patterns(filter)) {
        await this.scan(pattern, async (keys) => {
          const found = await this.readHeaders(keys);
          n += await this.unlink(found.filter((f): f is Located => !!f && matchesFilter(f.meta, filter)).map((f) => f.rkey));
        });
      }
    }, undefined);
    return n;
  }

  async markStale(filter: PurgeFilter): Promise<number> {
    let n = 0;
    await this.run(async () => {
      for (const pattern of this.patterns(filter)) {
        await this.scan(pattern, async (keys) => {
          const found = (await this.readHeaders(keys)).filter((f): f is Located => !!f && matchesFilter(f.meta, filter));
          const done = await Promise.all(found.map((f) => f.meta.freshUntil === 0 || this.rewrite(f, { ...f.meta, freshUntil: 0 }, 0)));
          n += done.filter(Boolean).length;
        });
      }
    }, undefined);
    return n;
  }

  stats(): TierStats {
    return {
      entries: Math.max(0, this.entries),
      bytes: Math.max(0, this.bytes),
      maxBytes: 0, // Redis bounds itself (maxmemory + its eviction policy).
      evictions: 0,
      corrupt: this.corrupt,
      errors: this.errors,
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    try {
      if (this.client.status === 'ready') await this.client.quit();
    } catch {
      // closing anyway
    } finally {
      this.client.disconnect();
    }
  }

  // ─── internals ──────────────────────────────────────────────────────────────────────────────────

  /** Runs an operation only while connected; any failure (timeout, connection loss) counts and yields `fallback`. */
  private async run<T>(op: () => Promise<T>, fallback: T): Promise<T> {
    if (!this.available) {
      this.errors++;
      return fallback;
    }
    try {
      return await op();
    } catch {
      this.errors++;
      return fallback;
    }
  }

  private setState(next: RedisTierStatus): void {
    if (next === this.state || this.closing) return;
    const prev = this.state;
    this.state = next;
    if (next === 'connected') {
      this.lastError = undefined;
      this.log.info({ tier: 'redis', from: prev }, 'redis cache tier connected');
    } else {
      this.log.warn({ tier: 'redis', from: prev, err: this.lastError ?? 'connection closed' }, 'redis cache tier down; skipped until it reconnects');
    }
  }

  private redisKey(key: string): string {
    const plain = this.opts.keyPrefix + key;
    return Buffer.byteLength(plain) > MAX_KEY_BYTES ? `${this.opts.keyPrefix}h:${sha256hex(key)}` : plain;
  }

  private ttlMs(freshUntil: number): number {
    const keep = this.opts.staleKeepSeconds * 1000;
    const max = this.opts.ttlSeconds * 1000 + keep;
    return Math.round(Math.min(max, Math.max(1000, freshUntil - Date.now() + keep)));
  }

  /** SCAN patterns covering every entry that may match `filter` (candidates; callers check the meta). */
  private patterns(filter: PurgeFilter): string[] {
    const prefix = globEscape(this.opts.keyPrefix);
    if (filter.bucket === undefined) return [`${prefix}*`];
    const hashed = `${prefix}h:*`;
    // Bucket "h": its plain keys already fall under the hashed pattern; scanning both would visit them twice.
    if (filter.bucket === 'h') return [hashed];
    return [`${prefix}${globEscape(filter.bucket)}:${globEscape(filter.prefix ?? '')}*`, hashed];
  }

  private async scan(pattern: string, each: (keys: Buffer[]) => Promise<void>): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
      if (keys.length) await each(keys);
      cursor = next.toString();
    } while (cursor !== '0');
  }

  /** Reads the headers of entries (not their bodies); null for absent or unparseable ones. */
  private readHeaders(rkeys: (Buffer | string)[]): Promise<(Located | null)[]> {
    return Promise.all(
      rkeys.map(async (rkey) => {
        let buf = await this.client.getrangeBuffer(rkey, 0, HEAD_READ - 1);
        if (buf.length === HEAD_READ) {
          const need = 4 + buf.readUInt32BE(0);
          if (need > HEAD_READ && need - 4 <= MAX_META_BYTES) buf = await this.client.getrangeBuffer(rkey, 0, need - 1);
        }
        const head = decodeHeader(buf);
        return head ? { rkey, meta: head.meta, header: buf.subarray(0, head.headerLen) } : null;
      }),
    );
  }

  private async rewrite(cur: Located, meta: CacheMeta, ttlMs: number): Promise<boolean> {
    const header = encodeHeader(meta);
    const ok = (await this.client.karasuRewriteHeader(cur.rkey, cur.header, header, ttlMs)) === 1;
    if (ok) this.bytes += header.length - cur.header.length;
    return ok;
  }

  /** UNLINKs keys (one round trip), keeping the approximate entry/byte counts; returns how many existed. */
  private async unlink(rkeys: (Buffer | string)[]): Promise<number> {
    if (rkeys.length === 0) return 0;
    const p = this.client.pipeline();
    for (const k of rkeys) p.strlen(k).unlink(k);
    const res = (await p.exec()) ?? [];
    let removed = 0;
    for (let i = 0; i < res.length; i += 2) {
      const [lenErr, len] = res[i];
      const [err, gone] = res[i + 1];
      if (lenErr || err) throw lenErr ?? err;
      if (Number(gone) > 0) {
        removed++;
        this.entries--;
        this.bytes -= Number(len);
      }
    }
    return removed;
  }
}
