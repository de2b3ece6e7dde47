// The Redis tier through Karasu over real HTTP, with a private redis-server: hits from Redis alone and
// under memory, item size limit, Redis killed mid-test (requests keep succeeding, /ready shows it) and
// restarted (used again), and two Karasu instances sharing one Redis: a purge on one empties the
// other's memory tier through pub/sub.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { Redis } from 'ioredis';
import { request, sha256 } from '../helpers/http.js';
import { startRedis, type RedisHandle } from '../helpers/redis.js';
import { startS3, type S3Handle } from '../helpers/s3.js';
import type { KarasuUnderTest } from '../helpers/karasu.js';
import { body, get, getOk, KiB, MiB, startCached, startCtlRelay, tier, until, type CacheOpts, type CtlRelay } from '../helpers/cache-kit.js';
import { cacheKey } from '../../src/cache/types.js';

const OBJ = Array.from({ length: 8 }, (_, i) => body(20 * KiB + i, 50 + i));
const BIG = body(1.5 * MiB, 60);

let s3: S3Handle;
let relay: CtlRelay;

before(async () => {
  const objects: Record<string, Buffer> = { 'big.bin': BIG };
  OBJ.forEach((o, i) => (objects[`o${i}.bin`] = o));
  OBJ.forEach((o, i) => (objects[`p/o${i}.bin`] = o));
  s3 = await startS3({ buckets: { rb: objects } });
  relay = await startCtlRelay(s3.endpoint);
});
after(async () => {
  await relay?.stop();
  await s3?.stop();
});

/** A private redis-server for this test and a raw client on it; null (test skipped) without redis-server. */
async function redisFor(t: TestContext): Promise<{ redis: RedisHandle; raw: Redis } | null> {
  const redis = await startRedis();
  if (!redis) {
    t.skip('redis-server not installed');
    return null;
  }
  const raw = new Redis(redis.url, { maxRetriesPerRequest: 1, lazyConnect: false });
  raw.on('error', () => {});
  t.after(async () => {
    raw.disconnect();
    await redis.stop();
  });
  return { redis, raw };
}

async function karasu(t: TestContext, cache: CacheOpts): Promise<KarasuUnderTest> {
  const k = await startCached(cache, [{ name: 'rb', prefix: '/r', endpoint: relay.url, bucket: 'rb' }]);
  t.after(() => k.stop());
  return k;
}

async function waitRedisReady(k: KarasuUnderTest): Promise<void> {
  await until('redis tier connected', () => tier(k, 'redis').available, 10_000);
}

async function readyCache(k: KarasuUnderTest): Promise<Record<string, string>> {
  const res = await request(`${k.url}/ready`);
  assert.equal(res.status, 200, 'a Redis outage does not make Karasu unready');
  return (JSON.parse(res.body.toString()) as { cache: Record<string, string> }).cache;
}

test('redis tier only: MISS, then HIT with detail=redis; the entry is in Redis under the prefix', async (t) => {
  const r = await redisFor(t);
  if (!r) return;
  const k = await karasu(t, { layers: ['redis'], redisUrl: r.redis.url, redisPrefix: 'kt:' });
  await waitRedisReady(k);
  relay.reset();
  assert.equal((await getOk(k, '/r/o0.bin', OBJ[0])).xcache, 'MISS');
  await until('written to redis', async () => (await r.raw.keys('kt:*')).length === 1);
  for (let i = 0; i < 2; i++) {
    const hit = await getOk(k, '/r/o0.bin', OBJ[0]);
    assert.equal(hit.xcache, 'HIT');
    assert.equal(hit.detail, 'redis');
  }
  const range = await get(k, '/r/o0.bin', { range: 'bytes=-16' });
  assert.equal(range.status, 206);
  assert.deepEqual(range.body, OBJ[0].subarray(OBJ[0].length - 16));
  assert.equal(relay.stats().gets, 1);
  const ttl = await r.raw.pttl((await r.raw.keys('kt:*'))[0]);
  assert.ok(ttl > 0, 'entries carry a TTL');
  // Soft purge in Redis: revalidated with a 304, the body is not moved again.
  relay.reset();
  assert.equal(await k.karasu.cache!.cache.markStale({ bucket: 'rb' }), 1);
  const soft = await getOk(k, '/r/o0.bin', OBJ[0]);
  assert.equal(soft.xcache, 'REVALIDATED');
  assert.equal(relay.stats().bodyBytes, 0);
  const again = await getOk(k, '/r/o0.bin', OBJ[0]);
  assert.equal(again.xcache, 'HIT', 'the 304 refreshed the entry in Redis');
  assert.equal(again.detail, 'redis');
  assert.equal(relay.stats().gets, 1);
});

test('memory+redis: HIT from memory; a second instance on the same Redis gets detail=redis, then memory', async (t) => {
  const r = await redisFor(t);
  if (!r) return;
  const a = await karasu(t, { layers: ['memory', 'redis'], redisUrl: r.redis.url, redisItemMb: 1 });
  await waitRedisReady(a);
  relay.reset();
  await getOk(a, '/r/o1.bin', OBJ[1]);
  await until('written to redis', async () => (await r.raw.keys('karasu:*')).length === 1);
  assert.equal((await getOk(a, '/r/o1.bin', OBJ[1])).detail, 'memory');

  const b = await karasu(t, { layers: ['memory', 'redis'], redisUrl: r.redis.url, redisItemMb: 1 });
  await waitRedisReady(b);
  const fromRedis = await getOk(b, '/r/o1.bin', OBJ[1]);
  assert.equal(fromRedis.xcache, 'HIT');
  assert.equal(fromRedis.detail, 'redis');
  await until('promoted into b\'s memory', async () => (await getOk(b, '/r/o1.bin', OBJ[1])).detail === 'memory', 2000);
  assert.equal(relay.stats().gets, 1, 'the second instance never went to S3');

  // Over redis max_item_size: kept in memory, not in Redis.
  await getOk(a, '/r/big.bin', BIG);
  assert.equal((await getOk(a, '/r/big.bin', BIG)).detail, 'memory');
  assert.equal((await r.raw.keys('karasu:*')).length, 1, 'big.bin (1.5 MiB > 1 MiB) skipped Redis');
  assert.equal((await getOk(b, '/r/big.bin', BIG)).xcache, 'MISS');
});

test('Redis killed mid-test → every request 200, /ready shows redis unavailable; restarted → used again', async (t) => {
  const r = await redisFor(t);
  if (!r) return;
  const k = await karasu(t, { layers: ['memory', 'redis'], redisUrl: r.redis.url });
  await waitRedisReady(k);
  assert.deepEqual(await readyCache(k), { memory: 'available', redis: 'available' });
  for (let i = 0; i < 3; i++) await getOk(k, `/r/o${i}.bin`, OBJ[i]);
  await until('3 entries in redis', async () => (await r.raw.keys('karasu:*')).length === 3);

  // Kill Redis while requests are in flight: cached and uncached objects alike must be served.
  const inflight = Array.from({ length: 16 }, (_, i) => getOk(k, `/r/o${i % 6}.bin`, OBJ[i % 6]));
  await r.redis.kill();
  await Promise.all(inflight);
  await until('/ready shows redis unavailable', async () => (await readyCache(k)).redis === 'unavailable', 5000);
  const t0 = Date.now();
  for (let i = 0; i < 6; i++) await getOk(k, `/r/p/o${i}.bin`, OBJ[i]);
  assert.ok(Date.now() - t0 < 3000, 'a down Redis is skipped, not waited for');
  const metrics = (await request(`${k.url}/metrics`)).body.toString();
  assert.match(metrics, /^karasu_cache_tier_available\{tier="redis"\} 0$/m);

  await r.redis.restart();
  await until('/ready shows redis available again', async () => (await readyCache(k)).redis === 'available', 10_000);
  // The tier is written and read again: an object never requested before lands in the (empty) restarted Redis …
  relay.reset();
  await getOk(k, '/r/o7.bin', OBJ[7]);
  await until('written to the restarted redis', async () => (await r.raw.keys('karasu:*')).length === 1, 5000);
  // … and is read back from it once memory no longer has it.
  await k.karasu.cache!.cache.tiers[0].delete(cacheKey('rb', 'o7.bin'));
  const back = await getOk(k, '/r/o7.bin', OBJ[7]);
  assert.equal(back.detail, 'redis');
  assert.equal(relay.stats().gets, 1);
});

/** The pid of the redis-server listening on `port` (one this test started). */
function redisPid(port: number): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    // redis-server rewrites its title to `redis-server 127.0.0.1:PORT`.
    if (/(^|\/)redis-server\b/.test(cmdline) && cmdline.includes(`:${port}`)) return Number(entry);
  }
  throw new Error(`no redis-server on port ${port}`);
}

test('Redis hung (SIGSTOP) → requests still succeed within the command timeout; SIGCONT → used again', async (t) => {
  const r = await redisFor(t);
  if (!r) return;
  const k = await karasu(t, { layers: ['memory', 'redis'], redisUrl: r.redis.url });
  await waitRedisReady(k);
  const pid = redisPid(r.redis.port);
  process.kill(pid, 'SIGSTOP');
  let stopped = true;
  t.after(() => {
    if (stopped) process.kill(pid, 'SIGCONT');
  });
  const t0 = Date.now();
  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => getOk(k, `/r/o${i}.bin`, OBJ[i])));
  const elapsed = Date.now() - t0;
  assert.ok(elapsed < 3000, `a hung Redis is not waited for beyond its timeout (${elapsed} ms)`);
  assert.ok(results.every((x) => x.xcache === 'MISS'));
  for (let i = 0; i < 6; i++) assert.equal((await getOk(k, `/r/o${i}.bin`, OBJ[i])).detail, 'memory');
  process.kill(pid, 'SIGCONT');
  stopped = false;
  await waitRedisReady(k);
  await getOk(k, '/r/o7.bin', OBJ[7]);
  await until('written to redis after SIGCONT', async () => (await r.raw.exists('karasu:rb:o7.bin')) === 1, 5000);
});

test('two instances sharing Redis: purge, purgeKey and markStale on A reach B\'s memory tier', async (t) => {
  const r = await redisFor(t);
  if (!r) return;
  const dir = await mkdtemp(join(tmpdir(), 'karasu-cache-redis-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const a = await karasu(t, { layers: ['memory', 'redis'], redisUrl: r.redis.url });
  // B has a disk tier too: a purge reaches every local tier.
  const b = await karasu(t, { layers: ['memory', 'disk', 'redis'], redisUrl: r.redis.url, diskDir: dir });
  await waitRedisReady(a);
  await waitRedisReady(b);
  await until('both instances subscribed to the purge channel', async () => {
    const res = (await r.raw.call('PUBSUB', 'NUMSUB', 'karasu:purge')) as [string, number];
    return Number(res[1]) === 2;
  });
  const memB = () => b.karasu.cache!.cache.tiers[0];
  const inMemB = async (objectKey: string) => (await memB().get(cacheKey('rb', objectKey))) !== null;
  const diskB = () => b.karasu.cache!.cache.tiers[1];
  const inDiskB = async (objectKey: string) => (await diskB().get(cacheKey('rb', objectKey))) !== null;
  const inLocalB = async (objectKey: string) => (await inMemB(objectKey)) || (await inDiskB(objectKey));
  /** Cached by B in all three tiers. The lower tiers are written after the response: wait for them, so a
   * purge is not overtaken by a write still under way (see the purge-after-fill test in cache-freshness). */
  const warm = async (paths: Array<[string, Buffer]>) => {
    for (const [p, o] of paths) {
      await getOk(b, p, o);
      assert.equal((await getOk(b, p, o)).detail, 'memory', `${p} in b's memory`);
      const objectKey = p.slice('/r/'.length);
      await until(`${p} on b's disk and in redis`, async () => (await inDiskB(objectKey)) && (await r.raw.exists(`karasu:rb:${objectKey}`)) === 1);
    }
  };
  const purgeA = a.karasu.cache!.cache;

  // purge({bucket}) on A
  await warm([
    ['/r/o0.bin', OBJ[0]],
    ['/r/o1.bin', OBJ[1]],
  ]);
  await purgeA.purge({ bucket: 'rb' });
  await until('b\'s memory and disk emptied', () => memB().stats().entries === 0 && tier(b, 'disk').entries === 0, 3000);
  relay.reset();
  const afterPurge = await getOk(b, '/r/o0.bin', OBJ[0]);
  assert.equal(afterPurge.xcache, 'MISS', 'purged from Redis too: refetched');
  assert.equal(relay.stats().gets, 1);

  // purge with a prefix: only matching keys go
  await warm([
    ['/r/p/o2.bin', OBJ[2]],
    ['/r/o2.bin', OBJ[2]],
  ]);
  await purgeA.purge({ bucket: 'rb', prefix: 'p/' });
  await until('p/o2 gone from b\'s memory and disk', async () => !(await inLocalB('p/o2.bin')), 3000);
  assert.ok(await inMemB('o2.bin'), 'o2.bin is outside the prefix');
  assert.equal((await getOk(b, '/r/o2.bin', OBJ[2])).detail, 'memory');

  // purgeKey on A
  await warm([['/r/o3.bin', OBJ[3]]]);
  assert.ok(await purgeA.purgeKey(cacheKey('rb', 'o3.bin')));
  await until('o3 gone from b\'s memory and disk', async () => !(await inLocalB('o3.bin')), 3000);
  const afterKey = await getOk(b, '/r/o3.bin', OBJ[3]);
  assert.notEqual(afterKey.detail, 'memory');
  assert.equal(afterKey.xcache, 'MISS');

  // markStale (soft purge) on A: B revalidates with a 304, no body bytes
  await warm([['/r/o4.bin', OBJ[4]]]);
  await purgeA.markStale({ bucket: 'rb' });
  await until('o4 stale in b\'s memory', async () => (await memB().get(cacheKey('rb', 'o4.bin')))?.meta.freshUntil === 0, 3000);
  relay.reset();
  const soft = await getOk(b, '/r/o4.bin', OBJ[4]);
  assert.equal(soft.xcache, 'REVALIDATED');
  assert.equal(relay.stats().gets, 1);
  assert.equal(relay.stats().bodyBytes, 0, 'soft purge moved no body bytes');
  assert.equal((await getOk(b, '/r/o4.bin', OBJ[4])).xcache, 'HIT');
  assert.equal(sha256((await getOk(a, '/r/o4.bin', OBJ[4])).body), sha256(OBJ[4]));
});
