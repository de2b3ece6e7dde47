// Freshness over real HTTP: per-bucket TTL and S3's max-age / s-maxage, expiry → conditional
// revalidation that moves no body bytes, stale-while-revalidate (one background refresh),
// stale-if-error with S3 down, soft and hard purge. s3rver behind a counting relay.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { startFaultyServer } from '../helpers/faulty.js';
import { startS3, type S3Handle } from '../helpers/s3.js';
import { loadConfigText } from '../../src/config/load.js';
import type { KarasuUnderTest } from '../helpers/karasu.js';
import {
  body,
  cacheYaml,
  get,
  getOk,
  sleep,
  startCached,
  startCtlRelay,
  tier,
  until,
  type BucketOpts,
  type CacheOpts,
  type CtlRelay,
} from '../helpers/cache-kit.js';
import { cacheKey } from '../../src/cache/types.js';

const A = body(40_000, 21);
const B = body(40_000, 22);
const MAXAGE = body(3000, 23);
const SMAXAGE = body(3000, 24);
const CHANGED = body(41_000, 25);

let s3: S3Handle;
let relay: CtlRelay;
const dirs: string[] = [];

before(async () => {
  s3 = await startS3({
    buckets: {
      fresh: {
        'a.bin': A,
        'b.bin': B,
        'c.bin': A,
        'maxage.bin': { body: MAXAGE, cacheControl: 'max-age=1' },
        'smaxage.bin': { body: SMAXAGE, cacheControl: 'max-age=1, s-maxage=100' },
        'changes.bin': A,
        'swr-change.bin': A,
        'gone.bin': B,
      },
    },
  });
  relay = await startCtlRelay(s3.endpoint);
});
after(async () => {
  await relay?.stop();
  await s3?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const bucket = (more: Partial<BucketOpts> = {}): BucketOpts => ({ name: 'fresh', prefix: '/f', endpoint: relay.url, bucket: 'fresh', ...more });

async function karasu(t: TestContext, cache: CacheOpts, buckets: BucketOpts[] = [bucket()]): Promise<KarasuUnderTest> {
  const k = await startCached(cache, buckets);
  t.after(() => k.stop());
  relay.reset();
  relay.mode = {};
  return k;
}

/** Waits until the stored entry for `objectKey` is no longer fresh (no longer than its TTL). */
async function expire(k: KarasuUnderTest, bucketName: string, objectKey: string): Promise<void> {
  const found = await k.karasu.cache!.cache.lookup(cacheKey(bucketName, objectKey));
  assert.ok(found, `${objectKey} is cached`);
  const wait = found.hit.meta.freshUntil - Date.now() + 5;
  assert.ok(wait < 2000, `entry fresh for ${wait} ms`);
  if (wait > 0) await sleep(wait);
}

const ttlOf = (cacheStatus: string): number => Number(/ttl=(-?\d+)/.exec(cacheStatus)?.[1] ?? NaN);

test('TTL from the bucket and max-age / s-maxage from S3; expiry → revalidation that moves no body bytes', async (t) => {
  const k = await karasu(t, { layers: ['memory'], ttl: 3600 }, [bucket({ cache: { ttl_seconds: 1 } }), bucket({ name: 'long', prefix: '/l', cache: { ttl_seconds: 50 } })]);
  await getOk(k, '/f/a.bin', A);
  await getOk(k, '/l/maxage.bin', MAXAGE);
  await getOk(k, '/l/smaxage.bin', SMAXAGE);
  await getOk(k, '/l/b.bin', B);
  const hitA = await getOk(k, '/f/a.bin', A);
  assert.equal(hitA.xcache, 'HIT');
  assert.ok(ttlOf(hitA.cacheStatus) <= 1, `bucket ttl_seconds 1: ${hitA.cacheStatus}`);
  const hitMaxAge = await getOk(k, '/l/maxage.bin', MAXAGE);
  assert.equal(hitMaxAge.xcache, 'HIT');
  assert.ok(ttlOf(hitMaxAge.cacheStatus) <= 1, `max-age=1 beats the bucket TTL: ${hitMaxAge.cacheStatus}`);
  const hitSMaxAge = await getOk(k, '/l/smaxage.bin', SMAXAGE);
  const sTtl = ttlOf(hitSMaxAge.cacheStatus);
  assert.ok(sTtl >= 98 && sTtl <= 100, `s-maxage=100 beats max-age: ${hitSMaxAge.cacheStatus}`);
  const hitB = await getOk(k, '/l/b.bin', B);
  const bTtl = ttlOf(hitB.cacheStatus);
  assert.ok(bTtl >= 48 && bTtl <= 50, `bucket ttl 50 over the global 3600: ${hitB.cacheStatus}`);
  assert.equal(relay.stats().gets, 4);

  await expire(k, 'fresh', 'a.bin');
  await expire(k, 'long', 'maxage.bin');
  relay.reset();
  for (const [path, expected] of [
    ['/f/a.bin', A],
    ['/l/maxage.bin', MAXAGE],
  ] as const) {
    const r = await getOk(k, path, expected);
    assert.equal(r.xcache, 'REVALIDATED', path);
    assert.match(r.cacheStatus, /fwd-status=304/, path);
  }
  const s = relay.stats();
  assert.equal(s.gets, 2, 'one conditional GET per expired entry');
  assert.equal(s.conditional, 2, 'the GETs carried If-None-Match');
  assert.ok(s.requestHeaders.every((h) => h['if-none-match'] !== undefined));
  assert.deepEqual(s.statuses, [304, 304]);
  assert.equal(s.bodyBytes, 0, 'revalidation moved no body bytes');

  // Refreshed: fresh again, no further upstream traffic; the entry's age restarted.
  const again = await getOk(k, '/f/a.bin', A);
  assert.equal(again.xcache, 'HIT');
  assert.equal(again.headers.age, '0');
  assert.equal(relay.stats().gets, 2);
  const stats = k.karasu.cache!.cache.stats().buckets;
  assert.equal(stats.fresh.revalidated, 1);
  assert.equal(stats.long.revalidated, 1);
});

test('an object changed at the origin is fetched again after expiry and replaces the entry', async (t) => {
  const k = await karasu(t, { layers: ['memory'] }, [bucket({ cache: { ttl_seconds: 1 } })]);
  await getOk(k, '/f/changes.bin', A);
  await s3.put('fresh', 'changes.bin', CHANGED);
  // Fresh: the old copy is still served.
  assert.equal((await getOk(k, '/f/changes.bin', A)).xcache, 'HIT');
  await expire(k, 'fresh', 'changes.bin');
  relay.reset();
  const r = await getOk(k, '/f/changes.bin', CHANGED);
  assert.equal(r.xcache, 'MISS');
  assert.equal(relay.stats().bodyBytes, CHANGED.length);
  assert.equal((await getOk(k, '/f/changes.bin', CHANGED)).xcache, 'HIT');
  assert.equal(relay.stats().gets, 1);
  await s3.put('fresh', 'changes.bin', A);
});

test('stale-while-revalidate: STALE at once while exactly one background refresh runs', async (t) => {
  const k = await karasu(t, { layers: ['memory'], swr: 30 }, [bucket({ cache: { ttl_seconds: 1 } })]);
  await getOk(k, '/f/b.bin', B);
  await getOk(k, '/f/swr-change.bin', A);
  await s3.put('fresh', 'swr-change.bin', CHANGED);
  t.after(() => s3.put('fresh', 'swr-change.bin', A));
  await expire(k, 'fresh', 'b.bin');
  await expire(k, 'fresh', 'swr-change.bin');

  // Changed at the origin: the stale copy is served once, the refresh brings the new one.
  const stale = await getOk(k, '/f/swr-change.bin', A);
  assert.equal(stale.xcache, 'STALE');
  await until('refreshed with the new body', async () => {
    const found = await k.karasu.cache!.cache.lookup(cacheKey('fresh', 'swr-change.bin'));
    return found?.hit.meta.size === CHANGED.length;
  });
  const fresh = await getOk(k, '/f/swr-change.bin', CHANGED);
  assert.equal(fresh.xcache, 'HIT');
  relay.reset();
  // The refresh is held at S3: stale answers must not wait for it.
  relay.mode = { holdHeaders: true };
  for (let i = 0; i < 5; i++) {
    const r = await getOk(k, '/f/b.bin', B);
    assert.equal(r.xcache, 'STALE');
    assert.match(r.cacheStatus, /ttl=-\d+/);
  }
  await until('the background refresh reached S3', () => relay.holding === 1);
  assert.equal(relay.stats().gets, 1, 'exactly one refresh for five stale hits');
  relay.mode = {};
  relay.release();
  await until('entry fresh again', async () => {
    const found = await k.karasu.cache!.cache.lookup(cacheKey('fresh', 'b.bin'));
    return !!found && found.hit.meta.freshUntil > Date.now();
  });
  assert.equal((await getOk(k, '/f/b.bin', B)).xcache, 'HIT');
  const s = relay.stats();
  assert.equal(s.gets, 1);
  assert.equal(s.conditional, 1);
  assert.equal(s.bodyBytes, 0, 'the refresh was a 304');
  assert.equal(k.karasu.cache!.fills.size, 0);
});

test('an object deleted at the origin: revalidation gets 404, the stale copy is dropped, not served', async (t) => {
  const k = await karasu(t, { layers: ['memory'], swr: 0, sie: 60 }, [bucket({ cache: { ttl_seconds: 1 } })]);
  await getOk(k, '/f/gone.bin', B);
  await s3.del('fresh', 'gone.bin');
  t.after(() => s3.put('fresh', 'gone.bin', B));
  await expire(k, 'fresh', 'gone.bin');
  const r = await get(k, '/f/gone.bin');
  assert.equal(r.status, 404);
  await until('entry dropped', async () => (await k.karasu.cache!.cache.lookup(cacheKey('fresh', 'gone.bin'))) === null);
  assert.equal((await get(k, '/f/gone.bin')).status, 404);
});

test('stale-if-error: S3 down → the stale copy is served; without the window → 502', async (t) => {
  const withWindow = await karasu(t, { layers: ['memory'], sie: 60 }, [bucket({ cache: { ttl_seconds: 1 } })]);
  const without = await karasu(t, { layers: ['memory'] }, [bucket({ cache: { ttl_seconds: 1 } })]);
  await getOk(withWindow, '/f/c.bin', A);
  await getOk(without, '/f/c.bin', A);
  await expire(withWindow, 'fresh', 'c.bin');
  await expire(without, 'fresh', 'c.bin');

  await s3.stop({ keepData: true });
  let down = true;
  t.after(() => (down ? s3.restart() : undefined));
  for (let i = 0; i < 2; i++) {
    const r = await getOk(withWindow, '/f/c.bin', A);
    assert.equal(r.xcache, 'STALE');
    assert.match(r.cacheStatus, /fwd=stale/);
  }
  const failed = await get(without, '/f/c.bin');
  assert.equal(failed.status, 502, `no stale-if-error window: ${failed.status} ${failed.body.toString().slice(0, 200)}`);
  // A cold object has nothing stale to fall back on.
  const cold = await get(withWindow, '/f/a.bin');
  assert.equal(cold.status, 502);

  await s3.restart();
  down = false;
  const back = await getOk(withWindow, '/f/c.bin', A);
  assert.equal(back.xcache, 'REVALIDATED');
});

test('stale-if-error: S3 answering 5xx or timing out → the stale copy is served', async (t) => {
  const cacheOpts: CacheOpts = { layers: ['memory'], sie: 60 };
  const k = await karasu(t, cacheOpts, [bucket({ cache: { ttl_seconds: 1 } })]);
  await getOk(k, '/f/c.bin', A);
  await expire(k, 'fresh', 'c.bin');
  // The cache survives a reload; the bucket now points at a misbehaving backend.
  const moveTo = async (endpoint: string, s3Extra: Record<string, unknown> = {}) => {
    const yaml = cacheYaml(cacheOpts, [bucket({ endpoint, cache: { ttl_seconds: 1 }, s3: s3Extra })]);
    const { config } = loadConfigText(yaml, 'reload.yaml', { KARASU_TEST_PORT: String(k.port) });
    await k.karasu.reload(config);
  };
  const failing = await startFaultyServer('status', { status: 503 });
  t.after(() => failing.stop());
  await moveTo(failing.url);
  const on5xx = await getOk(k, '/f/c.bin', A);
  assert.equal(on5xx.xcache, 'STALE');
  assert.match(on5xx.cacheStatus, /fwd-status=5\d\d/);
  assert.ok(failing.requests >= 1, 'S3 was asked');

  const stalled = await startFaultyServer('stall-headers');
  t.after(() => stalled.stop());
  await moveTo(stalled.url, { timeout: 0.3, connect_timeout_seconds: 0.3 });
  const t0 = Date.now();
  const onTimeout = await getOk(k, '/f/c.bin', A);
  assert.equal(onTimeout.xcache, 'STALE');
  assert.match(onTimeout.cacheStatus, /fwd-status=504/);
  assert.ok(Date.now() - t0 < 3000, 'served once the upstream timeout fired');
});

test('soft purge (markStale) → REVALIDATED with zero body bytes; hard purge → MISS; purgeKey → MISS', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'karasu-cache-fresh-'));
  dirs.push(dir);
  const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir });
  const cache = k.karasu.cache!.cache;
  await getOk(k, '/f/a.bin', A);
  await getOk(k, '/f/b.bin', B);
  await until('both on disk', () => tier(k, 'disk').entries === 2);
  relay.reset();

  assert.equal(await cache.markStale({ bucket: 'fresh' }), 2);
  for (const [path, expected] of [
    ['/f/a.bin', A],
    ['/f/b.bin', B],
  ] as const) {
    const r = await getOk(k, path, expected);
    assert.equal(r.xcache, 'REVALIDATED', path);
  }
  assert.equal(relay.stats().gets, 2);
  assert.equal(relay.stats().bodyBytes, 0, 'soft purge moved no body bytes');
  assert.equal((await getOk(k, '/f/a.bin', A)).xcache, 'HIT');

  // The disk copy was soft-purged too (and refreshed by the 304): drop memory and look again.
  await cache.tiers[0].purge({});
  await cache.markStale({ bucket: 'fresh', prefix: 'b' });
  const fromDisk = await getOk(k, '/f/b.bin', B);
  assert.equal(fromDisk.xcache, 'REVALIDATED');
  const fromDiskA = await getOk(k, '/f/a.bin', A);
  assert.equal(fromDiskA.xcache, 'HIT', 'a prefix soft purge leaves other keys fresh');
  assert.equal(fromDiskA.detail, 'disk');

  relay.reset();
  assert.ok(await cache.purgeKey(cacheKey('fresh', 'a.bin')));
  assert.equal((await getOk(k, '/f/a.bin', A)).xcache, 'MISS');
  assert.equal((await getOk(k, '/f/b.bin', B)).xcache, 'HIT');
  await cache.purge({ bucket: 'fresh' });
  assert.equal((await getOk(k, '/f/b.bin', B)).xcache, 'MISS');
  assert.equal(relay.stats().bodyBytes, A.length + B.length, 'hard purges refetch the bodies');
});

test(
  'a purge right after a fill removes the entry from every tier (a background tier write does not land after it)',
  async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'karasu-cache-fresh-'));
    dirs.push(dir);
    const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir });
    const cache = k.karasu.cache!.cache;
    for (const [objectKey, expected] of [
      ['a.bin', A],
      ['b.bin', B],
      ['c.bin', A],
    ] as const) {
      assert.equal((await getOk(k, `/f/${objectKey}`, expected)).xcache, 'MISS');
      await cache.purgeKey(cacheKey('fresh', objectKey));
    }
    await until('no fill or write under way', () => k.karasu.cache!.fills.size === 0);
    await sleep(50);
    assert.equal(tier(k, 'disk').entries, 0, 'purged entries came back on disk');
    assert.equal((await getOk(k, '/f/a.bin', A)).xcache, 'MISS');
  },
);
