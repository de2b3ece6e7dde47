// Redis cache tier and purge bus against a private redis-server (never the system one on 6379).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { PurgeBus, type PurgeMessage } from '../../src/cache/purge-bus.js';
import { RedisTier, type RedisTierOptions } from '../../src/cache/tiers/redis.js';
import { cacheKey, type CacheMeta } from '../../src/cache/types.js';
import { startRedis, type RedisHandle } from '../helpers/redis.js';

const PREFIX = 'karasu:';
const ALL_BYTES = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.alloc(3000, 0xff)]);

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function meta(bucket: string, objectKey: string, body: Buffer, freshForMs = 60_000): CacheMeta {
  const now = Date.now();
  return {
    key: cacheKey(bucket, objectKey),
    bucket,
    objectKey,
    headers: { 'content-type': 'application/octet-stream', etag: '"e1"' },
    size: body.length,
    etag: '"e1"',
    lastModified: 'Tue, 01 Apr 2025 00:00:00 GMT',
    storedAt: now,
    freshUntil: now + freshForMs,
    sha256: sha(body),
  };
}

function captureLog() {
  const lines: { level: 'warn' | 'info'; msg: string }[] = [];
  return {
    lines,
    log: {
      warn: (_o: object, msg: string) => lines.push({ level: 'warn', msg }),
      info: (_o: object, msg: string) => lines.push({ level: 'info', msg }),
    },
  };
}

async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await sleep(50);
  }
  return cond();
}

/** A redis-server, a connected tier on it, and a raw client to inspect/tamper with; all closed after. */
async function setup(t: TestContext, extra: Partial<RedisTierOptions> = {}) {
  const redis = await startRedis();
  if (!redis) {
    t.skip('redis-server not installed');
    return null;
  }
  const tier = new RedisTier({
    url: redis.url,
    db: 0,
    keyPrefix: PREFIX,
    ttlSeconds: 3600,
    maxItemSize: 1 << 20,
    timeoutMs: 200,
    staleKeepSeconds: 300,
    ...extra,
  });
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 });
  raw.on('error', () => {});
  t.after(async () => {
    await tier.close();
    raw.disconnect();
    await redis.stop();
  });
  assert.ok(await until(() => tier.available, 5000), 'tier connects');
  return { redis, tier, raw };
}

test('redis tier: binary round trip, miss, delete', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const m = meta('media', 'bin/all.bin', ALL_BYTES);
  await s.tier.set(m, ALL_BYTES);
  const hit = await s.tier.get(m.key);
  assert.ok(hit);
  assert.deepEqual(hit.meta, m);
  assert.equal(hit.body.kind, 'buffer');
  assert.ok(hit.body.kind === 'buffer' && hit.body.data.equals(ALL_BYTES));
  assert.equal(s.tier.status(), 'connected');

  const empty = meta('media', 'empty', Buffer.alloc(0));
  await s.tier.set(empty, Buffer.alloc(0));
  const e = await s.tier.get(empty.key);
  assert.ok(e && e.body.kind === 'buffer' && e.body.data.length === 0);

  assert.equal(await s.tier.get('media:nope'), null);
  assert.deepEqual(
    { entries: s.tier.stats().entries, maxBytes: s.tier.stats().maxBytes, errors: s.tier.stats().errors },
    { entries: 2, maxBytes: 0, errors: 0 },
  );
  await s.tier.set(m, ALL_BYTES); // overwrite: still 2 entries
  assert.equal(s.tier.stats().entries, 2);
  assert.equal(await s.tier.delete(m.key), true);
  assert.equal(await s.tier.delete(m.key), false);
  assert.equal(await s.tier.get(m.key), null);
  assert.equal(s.tier.stats().entries, 1);
});

test('redis tier: TTL = time to freshUntil + staleKeep, clamped', async (t) => {
  const s = await setup(t, { ttlSeconds: 3600, staleKeepSeconds: 300 });
  if (!s) return;
  const body = Buffer.from('x');
  const cases: [string, number, number][] = [
    ['fresh-60s', 60_000, 360_000], // 60 s fresh + 300 s stale keep
    ['fresh-1y', 365 * 86400_000, 3_900_000], // clamped to ttlSeconds + staleKeep
    ['long-expired', -3600_000, 1000], // clamped to 1 s
  ];
  for (const [k, freshFor, expected] of cases) {
    await s.tier.set(meta('b', k, body, freshFor), body);
    const pttl = await s.raw.pttl(`${PREFIX}b:${k}`);
    assert.ok(pttl <= expected && pttl > expected - 2000, `${k}: PTTL ${pttl} ≈ ${expected}`);
  }
});

test('redis tier: items over maxItemSize (or with a wrong size) are skipped', async (t) => {
  const s = await setup(t, { maxItemSize: 1000 });
  if (!s) return;
  const big = Buffer.alloc(1001, 1);
  await s.tier.set(meta('b', 'big', big), big);
  assert.equal(await s.raw.exists(`${PREFIX}b:big`), 0);
  const ok = Buffer.alloc(1000, 1);
  await s.tier.set(meta('b', 'ok', ok), ok);
  assert.equal(await s.raw.exists(`${PREFIX}b:ok`), 1);
  await s.tier.set({ ...meta('b', 'lying', ok), size: 999 }, ok);
  assert.equal(await s.raw.exists(`${PREFIX}b:lying`), 0);
});

test('redis tier: corrupt values are dropped and counted', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const m = meta('b', 'k', ALL_BYTES);
  const rkey = `${PREFIX}b:k`;

  await s.tier.set(m, ALL_BYTES);
  const len = await s.raw.strlen(rkey);
  await s.raw.setrange(rkey, len - 10, Buffer.from([ALL_BYTES[ALL_BYTES.length - 10] ^ 1])); // flip a body byte
  assert.equal(await s.tier.get(m.key), null);
  assert.equal(s.tier.stats().corrupt, 1);
  assert.equal(await s.raw.exists(rkey), 0);

  await s.tier.set(m, ALL_BYTES);
  await s.raw.append(rkey, 'x'); // length mismatch
  assert.equal(await s.tier.get(m.key), null);

  for (const garbage of ['garbage', Buffer.from([0, 0, 0, 5, 0x7b]), Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2])]) {
    await s.raw.set(rkey, garbage);
    assert.equal(await s.tier.get(m.key), null);
  }
  assert.equal(s.tier.stats().corrupt, 5);
  assert.equal(await s.raw.exists(rkey), 0);
});

test('redis tier: long keys are hashed and still checked against the requested key', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const longA = 'a/'.repeat(150);
  const m = meta('b', longA, ALL_BYTES);
  await s.tier.set(m, ALL_BYTES);
  const hashed = `${PREFIX}h:${sha(m.key)}`;
  assert.equal(await s.raw.exists(hashed), 1);
  assert.equal(await s.raw.exists(PREFIX + m.key), 0);
  const hit = await s.tier.get(m.key);
  assert.ok(hit && hit.body.kind === 'buffer' && hit.body.data.equals(ALL_BYTES));

  // An entry found under another key's name is not served for that key.
  const otherKey = cacheKey('b', 'z/'.repeat(150));
  await s.raw.copy(hashed, `${PREFIX}h:${sha(otherKey)}`);
  assert.equal(await s.tier.get(otherKey), null);

  // Short keys are not hashed.
  const short = meta('b', 'short', ALL_BYTES);
  await s.tier.set(short, ALL_BYTES);
  assert.equal(await s.raw.exists(`${PREFIX}b:short`), 1);
});

test('redis tier: purge all / bucket / prefix touches only our entries', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const body = Buffer.from('body');
  const put = (bucket: string, key: string) => s.tier.set(meta(bucket, key, body), body);
  await put('b1', 'a/1');
  await put('b1', 'a/2');
  await put('b1', 'a/' + 'x'.repeat(300)); // hashed
  await put('b1', 'b/1');
  await put('b1', 'a*lit'); // glob chars in the prefix must match literally
  await put('b1x', 'a/1'); // bucket b1x must not match bucket b1
  await put('b1:a', 'zz'); // same cache key space as b1 "a:zz"; its meta says bucket b1:a
  await put('b?', 'k'); // glob char in the bucket
  await put('h', 'k');
  await s.raw.set('foreign', 'keep');
  await s.raw.set('other:b1:a/1', 'keep');

  assert.equal(await s.tier.purge({ bucket: 'b1', prefix: 'a*' }), 1);
  assert.equal(await s.raw.exists(`${PREFIX}b1:a/1`), 1);
  assert.equal(await s.tier.purge({ bucket: 'b1', prefix: 'a/' }), 3);
  assert.equal(await s.tier.get(cacheKey('b1', 'a/1')), null);
  assert.ok(await s.tier.get(cacheKey('b1', 'b/1')));
  assert.equal(await s.tier.purge({ bucket: 'b?' }), 1);
  assert.equal(await s.tier.purge({ bucket: 'b1' }), 1);
  assert.ok(await s.tier.get(cacheKey('b1x', 'a/1')));
  assert.ok(await s.tier.get(cacheKey('b1:a', 'zz')));
  assert.equal(await s.tier.purge({ bucket: 'h' }), 1);
  assert.equal(await s.tier.purge({}), 2);
  assert.deepEqual((await s.raw.keys('*')).sort(), ['foreign', 'other:b1:a/1']);
  assert.equal(s.tier.stats().entries, 0);
});

test('redis tier: markStale and updateMeta rewrite the meta, keep the body and TTL', async (t) => {
  const s = await setup(t);
  if (!s) return;
  const a = meta('b', 'a/1', ALL_BYTES);
  const long = meta('b', 'a/' + 'y'.repeat(300), ALL_BYTES);
  const other = meta('b', 'z/1', ALL_BYTES);
  for (const m of [a, long, other]) await s.tier.set(m, ALL_BYTES);
  const pttlBefore = await s.raw.pttl(`${PREFIX}b:a/1`);

  assert.equal(await s.tier.markStale({ bucket: 'b', prefix: 'a/' }), 2);
  for (const m of [a, long]) {
    const hit = await s.tier.get(m.key);
    assert.ok(hit && hit.body.kind === 'buffer' && hit.body.data.equals(ALL_BYTES));
    assert.deepEqual(hit.meta, { ...m, freshUntil: 0 });
  }
  assert.equal((await s.tier.get(other.key))!.meta.freshUntil, other.freshUntil);
  const pttlAfter = await s.raw.pttl(`${PREFIX}b:a/1`);
  assert.ok(pttlAfter > pttlBefore - 2000, `TTL kept (${pttlBefore} → ${pttlAfter})`);
  assert.equal(s.tier.stats().corrupt, 0);

  // Revalidation: new freshness and headers, body untouched, TTL extended.
  const revalidated = { ...a, freshUntil: Date.now() + 3000_000, headers: { ...a.headers, 'cache-control': 'max-age=3000' } };
  await s.tier.updateMeta(revalidated);
  assert.deepEqual((await s.tier.get(a.key))!.meta, revalidated);
  assert.ok((await s.raw.pttl(`${PREFIX}b:a/1`)) > pttlBefore + 2000_000);

  // Absent: no-op. A meta describing another body drops the entry instead of making it "corrupt".
  await s.tier.updateMeta(meta('b', 'absent', ALL_BYTES));
  assert.equal(await s.raw.exists(`${PREFIX}b:absent`), 0);
  await s.tier.updateMeta({ ...other, sha256: sha('different') });
  assert.equal(await s.tier.get(other.key), null);
  assert.equal(s.tier.stats().corrupt, 0);

  assert.equal(await s.tier.markStale({}), 2);
});

test('redis tier: Redis killed → fast misses; restarted → reconnects by itself', async (t) => {
  const { lines, log } = captureLog();
  const s = await setup(t, { timeoutMs: 200, log });
  if (!s) return;
  const m = meta('b', 'k', ALL_BYTES);
  await s.tier.set(m, ALL_BYTES);
  assert.ok(await s.tier.get(m.key));

  await s.redis.kill();
  const ops: [string, () => Promise<unknown>, unknown][] = [
    ['get', () => s.tier.get(m.key), null],
    ['set', () => s.tier.set(m, ALL_BYTES), undefined],
    ['delete', () => s.tier.delete(m.key), false],
    ['updateMeta', () => s.tier.updateMeta(m), undefined],
    ['purge', () => s.tier.purge({ bucket: 'b' }), 0],
    ['markStale', () => s.tier.markStale({}), 0],
  ];
  // Right after the kill (maybe before the client noticed) and then repeatedly while it reconnects.
  for (let round = 0; round < 5; round++) {
    for (const [name, op, expected] of ops) {
      const t0 = performance.now();
      assert.deepEqual(await op(), expected, name);
      const ms = performance.now() - t0;
      assert.ok(ms < 400, `${name} took ${ms.toFixed(0)} ms while Redis is down`);
    }
    await sleep(200);
  }
  assert.equal(s.tier.available, false);
  assert.equal(s.tier.status(), 'down');
  assert.ok(s.tier.stats().errors >= 25);
  assert.deepEqual(lines.map((l) => l.level), ['info', 'warn'], 'one log line per state change'); // connected, down

  await s.redis.restart();
  assert.ok(await until(() => s.tier.available, 10_000), 'reconnected within 10 s');
  assert.equal(s.tier.status(), 'connected');
  assert.equal(await s.tier.get(m.key), null); // no persistence: data is gone
  await s.tier.set(m, ALL_BYTES);
  assert.ok(await s.tier.get(m.key));
  assert.deepEqual(lines.map((l) => l.level), ['info', 'warn', 'info']);
});

test('redis tier: never reachable → down at once, ops are instant misses', async (t) => {
  const redis = await startRedis();
  if (!redis) return t.skip('redis-server not installed');
  const url = redis.url;
  await redis.stop(); // a port nobody listens on
  const tier = new RedisTier({ url, db: 0, keyPrefix: PREFIX, ttlSeconds: 60, maxItemSize: 1000, timeoutMs: 200, staleKeepSeconds: 0 });
  t.after(() => tier.close());
  assert.equal(tier.status(), 'connecting');
  const t0 = performance.now();
  assert.equal(await tier.get('b:k'), null);
  assert.ok(performance.now() - t0 < 50);
  assert.ok(await until(() => tier.status() === 'down', 2000));
  assert.equal(tier.available, false);
});

test('purge bus: delivered to other instances, not echoed; survives a Redis restart', async (t) => {
  const redis: RedisHandle | null = await startRedis();
  if (!redis) return t.skip('redis-server not installed');
  const make = (instanceId: string, channel = 'karasu:purge') => {
    const bus = PurgeBus.create({ url: redis.url, db: 0, channel, instanceId });
    const got: PurgeMessage[] = [];
    bus.onMessage((m) => got.push(m));
    return { bus, got };
  };
  const a = make('A');
  const b = make('B');
  const other = make('C', 'elsewhere');
  t.after(async () => {
    await Promise.all([a.bus.close(), b.bus.close(), other.bus.close()]);
    await redis.stop();
  });
  assert.ok(await until(() => a.bus.available && b.bus.available && other.bus.available, 5000));

  await a.bus.publish({ op: 'purge', filter: { bucket: 'media', prefix: 'img/' } });
  assert.ok(await until(() => b.got.length === 1, 2000));
  assert.deepEqual(b.got[0], { op: 'purge', filter: { bucket: 'media', prefix: 'img/' } });
  await b.bus.publish({ op: 'stale', filter: {}, key: 'media:x.png' });
  assert.ok(await until(() => a.got.length === 1, 2000));
  assert.deepEqual(a.got[0], { op: 'stale', filter: {}, key: 'media:x.png' });
  await sleep(100);
  assert.equal(a.got.length, 1, 'A does not receive its own message');
  assert.equal(b.got.length, 1, 'B does not receive its own message');
  assert.equal(other.got.length, 0, 'other channel untouched');

  // Junk on the channel is ignored.
  const raw = new Redis(redis.url);
  await raw.publish('karasu:purge', '{"from":"X","op":"drop","filter":{}}');
  await raw.publish('karasu:purge', 'not json');
  raw.disconnect();
  assert.ok(await until(() => b.bus.counters.errors === 2, 2000));
  assert.equal(b.got.length, 1);

  await redis.kill();
  assert.ok(await until(() => !a.bus.available, 2000));
  const t0 = performance.now();
  await a.bus.publish({ op: 'purge', filter: {} }); // soft failure: no throw
  assert.ok(performance.now() - t0 < 100);
  assert.ok(a.bus.counters.errors >= 1);

  await redis.restart();
  assert.ok(await until(() => a.bus.available && b.bus.available, 10_000), 'both re-subscribed');
  await a.bus.publish({ op: 'purge', filter: { bucket: 'after' } });
  assert.ok(await until(() => b.got.length === 2, 2000));
  assert.deepEqual(b.got[1], { op: 'purge', filter: { bucket: 'after' } });
});
