// The cache over real HTTP: hit/miss per tier (memory, disk, memory+disk), HEAD / Range / If-None-Match
// answered from a cached entry without S3, byte budgets held, per-tier and per-bucket size limits,
// per-bucket bypass, uncacheable responses, and the cache metrics. s3rver behind a counting relay.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { request, sha256 } from '../helpers/http.js';
import { startS3, type S3Handle } from '../helpers/s3.js';
import type { KarasuUnderTest } from '../helpers/karasu.js';
import {
  body,
  filesUnder,
  get,
  getOk,
  KiB,
  MiB,
  startCached,
  startCtlRelay,
  tier,
  until,
  type BucketOpts,
  type CacheOpts,
  type CtlRelay,
} from '../helpers/cache-kit.js';

const SMALL = body(1000, 1);
const RANGED = body(10_000, 2);
const BIG = body(1.5 * MiB, 3);
const PIECES = Array.from({ length: 6 }, (_, i) => body(300 * KiB, 10 + i));
const NOSTORE = body(500, 4);
const PRIVATE = body(500, 5);

let s3: S3Handle;
let relay: CtlRelay;
const dirs: string[] = [];

before(async () => {
  const objects: Record<string, Buffer | { body: Buffer; cacheControl: string }> = {
    'small.bin': SMALL,
    'range.bin': RANGED,
    'big.bin': BIG,
    'nostore.bin': { body: NOSTORE, cacheControl: 'no-store' },
    'private.bin': { body: PRIVATE, cacheControl: 'private, max-age=600' },
  };
  PIECES.forEach((p, i) => (objects[`piece/${i}`] = p));
  s3 = await startS3({ buckets: { core: objects } });
  relay = await startCtlRelay(s3.endpoint);
});
after(async () => {
  await relay?.stop();
  await s3?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tmpDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'karasu-cache-core-'));
  dirs.push(d);
  return d;
}

const bucket = (more: Partial<BucketOpts> = {}): BucketOpts => ({ name: 'core', prefix: '/c', endpoint: relay.url, bucket: 'core', ...more });

async function karasu(t: TestContext, cache: CacheOpts, buckets: BucketOpts[] = [bucket()]): Promise<KarasuUnderTest> {
  const k = await startCached(cache, buckets);
  t.after(() => k.stop());
  relay.reset();
  relay.mode = {};
  return k;
}

const gets = () => relay.stats().gets;

test('memory tier: MISS then HIT from memory; HEAD and If-None-Match answered from the entry', async (t) => {
  const k = await karasu(t, { layers: ['memory'] });
  const miss = await getOk(k, '/c/small.bin', SMALL);
  assert.equal(miss.xcache, 'MISS');
  assert.match(miss.cacheStatus, /fwd=uri-miss/);
  assert.equal(gets(), 1);

  const hit = await getOk(k, '/c/small.bin', SMALL);
  assert.equal(hit.xcache, 'HIT');
  assert.equal(hit.detail, 'memory');
  assert.match(hit.cacheStatus, /^karasu; hit; ttl=\d+/);
  assert.equal(hit.headers.etag, miss.headers.etag);
  assert.equal(hit.headers['content-length'], String(SMALL.length));
  assert.ok(hit.headers.age !== undefined, 'Age on a cached response');

  const head = await get(k, '/c/small.bin', {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.xcache, 'HIT');
  assert.equal(head.headers['content-length'], String(SMALL.length));
  assert.equal(head.headers.etag, miss.headers.etag);
  assert.equal(head.body.length, 0);

  const etag = String(miss.headers.etag);
  const nm = await get(k, '/c/small.bin', { 'if-none-match': etag });
  assert.equal(nm.status, 304);
  assert.equal(nm.body.length, 0);
  assert.equal(nm.headers.etag, etag);
  assert.equal(nm.xcache, 'HIT');
  const nmList = await get(k, '/c/small.bin', { 'if-none-match': `"nope", ${etag}` });
  assert.equal(nmList.status, 304);
  const other = await getOk(k, '/c/small.bin', SMALL, { 'if-none-match': '"something-else"' });
  assert.equal(other.xcache, 'HIT');

  const ims = await get(k, '/c/small.bin', { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString() });
  assert.equal(ims.status, 304);
  assert.equal(relay.stats().requests, 1, 'hits, HEAD and conditionals never reach S3');
  const mem = tier(k, 'memory');
  assert.equal(mem.entries, 1);
  assert.ok(mem.hits >= 5);
});

test('a conditional request on a cold object fills the cache and is answered 304', async (t) => {
  const k = await karasu(t, { layers: ['memory'] });
  // A cold HEAD is forwarded as a HEAD and stores nothing.
  const head = await get(k, '/c/range.bin', {}, 'HEAD');
  assert.equal(head.xcache, 'MISS');
  assert.equal(relay.stats().heads, 1);
  assert.equal(tier(k, 'memory').entries, 0);
  const etag = String(head.headers.etag);
  relay.reset();
  const cold = await get(k, '/c/range.bin', { 'if-none-match': etag });
  assert.equal(cold.status, 304);
  assert.equal(cold.xcache, 'MISS');
  assert.equal(relay.stats().gets, 1);
  assert.equal((await getOk(k, '/c/range.bin', RANGED)).xcache, 'HIT');
  assert.equal(relay.stats().gets, 1);
});

test('the cache key is the bucket name and object key, never the Host header', async (t) => {
  const k = await karasu(t, { layers: ['memory'] }, [bucket(), bucket({ name: 'core2', prefix: '/c2' })]);
  await getOk(k, '/c/small.bin', SMALL, { host: 'one.example' });
  const other = await getOk(k, '/c/small.bin', SMALL, { host: 'two.example' });
  assert.equal(other.xcache, 'HIT', 'another Host, same entry');
  // Another bucket config on the same S3 bucket has its own entries.
  assert.equal((await getOk(k, '/c2/small.bin', SMALL)).xcache, 'MISS');
  assert.equal(gets(), 2);
  assert.equal(tier(k, 'memory').entries, 2);
  assert.ok(await k.karasu.cache!.cache.lookup('core:small.bin'));
  assert.ok(await k.karasu.cache!.cache.lookup('core2:small.bin'));
});

test('Range on a cached object: 206 (first, open-ended, suffix), 416 with bytes */N, zero upstream', async (t) => {
  const k = await karasu(t, { layers: ['memory'] });
  // A Range miss is forwarded as a range and does not put a partial body in the cache.
  const coldRange = await get(k, '/c/range.bin', { range: 'bytes=0-9' });
  assert.equal(coldRange.status, 206);
  assert.deepEqual(coldRange.body, RANGED.subarray(0, 10));
  assert.equal(k.karasu.cache!.cache.stats().tiers.memory.entries, 0, 'a partial response is not stored');

  await getOk(k, '/c/range.bin', RANGED);
  relay.reset();
  const N = RANGED.length;
  const cases: Array<[string, number, number]> = [
    ['bytes=0-99', 0, 99],
    ['bytes=9990-', 9990, N - 1],
    ['bytes=-100', N - 100, N - 1],
    ['bytes=5000-999999', 5000, N - 1],
    ['bytes=-20000', 0, N - 1],
  ];
  for (const [range, start, end] of cases) {
    const r = await get(k, '/c/range.bin', { range });
    assert.equal(r.status, 206, range);
    assert.equal(r.xcache, 'HIT', range);
    assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${N}`, range);
    assert.equal(r.headers['content-length'], String(end - start + 1), range);
    assert.equal(sha256(r.body), sha256(RANGED.subarray(start, end + 1)), range);
  }
  for (const range of ['bytes=10000-', 'bytes=20000-30000', 'bytes=-0']) {
    const r = await get(k, '/c/range.bin', { range });
    assert.equal(r.status, 416, range);
    assert.equal(r.headers['content-range'], `bytes */${N}`, range);
  }
  // If-Range with the current ETag honours the range; with another one the whole object is sent.
  const etag = String((await get(k, '/c/range.bin', {}, 'HEAD')).headers.etag);
  const ir = await get(k, '/c/range.bin', { range: 'bytes=0-9', 'if-range': etag });
  assert.equal(ir.status, 206);
  const irOld = await get(k, '/c/range.bin', { range: 'bytes=0-9', 'if-range': '"old"' });
  assert.equal(irOld.status, 200);
  assert.equal(sha256(irOld.body), sha256(RANGED));
  assert.equal(relay.stats().requests, 0, 'ranges of a cached object never reach S3');
});

test('disk tier only: MISS, then HIT with detail=disk; the body file is on disk', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['disk'], diskDir: dir });
  assert.equal((await getOk(k, '/c/small.bin', SMALL)).xcache, 'MISS');
  await until('disk entry committed', () => tier(k, 'disk').entries === 1);
  for (let i = 0; i < 2; i++) {
    const hit = await getOk(k, '/c/small.bin', SMALL);
    assert.equal(hit.xcache, 'HIT');
    assert.equal(hit.detail, 'disk');
  }
  const head = await get(k, '/c/small.bin', {}, 'HEAD');
  assert.equal(head.xcache, 'HIT');
  assert.equal(head.headers['content-length'], String(SMALL.length));
  const r = await get(k, '/c/small.bin', { range: 'bytes=-10' });
  assert.equal(r.status, 206);
  assert.deepEqual(r.body, SMALL.subarray(SMALL.length - 10));
  assert.equal(gets(), 1);
  const files = await filesUnder(join(dir, 'entries'));
  assert.equal(files.filter((f) => f.path.endsWith('.body')).length, 1);
  assert.equal(files.filter((f) => f.path.endsWith('.meta')).length, 1);
  assert.equal(files.find((f) => f.path.endsWith('.body'))!.size, SMALL.length);
});

test('memory+disk: an object evicted from memory is served from disk, then promoted back to memory', async (t) => {
  const dir = await tmpDir();
  // 1 MiB of memory holds 3 of the 300 KiB pieces; disk holds them all.
  const k = await karasu(t, { layers: ['memory', 'disk'], memoryMb: 1, diskDir: dir });
  for (let i = 0; i < PIECES.length; i++) {
    await getOk(k, `/c/piece/${i}`, PIECES[i]);
    assert.ok(tier(k, 'memory').bytes <= MiB, 'memory budget held');
  }
  await until('every piece on disk', () => tier(k, 'disk').entries === PIECES.length);
  assert.ok(tier(k, 'memory').entries < PIECES.length, 'memory could not hold every piece');
  assert.equal(gets(), PIECES.length);

  // Whatever memory dropped comes from disk, and nothing from S3.
  const fromDisk: number[] = [];
  for (let i = 0; i < PIECES.length; i++) {
    const r = await getOk(k, `/c/piece/${i}`, PIECES[i]);
    assert.equal(r.xcache, 'HIT');
    if (r.detail === 'disk') fromDisk.push(i);
    else assert.equal(r.detail, 'memory');
  }
  assert.ok(fromDisk.length > 0, 'some pieces were served from disk');
  assert.equal(gets(), PIECES.length, 'no upstream request for anything on disk');

  // Asked for again and again, a disk hit is promoted into memory (admission counts its popularity).
  const i = fromDisk[0];
  await until(`piece ${i} promoted to memory`, async () => (await getOk(k, `/c/piece/${i}`, PIECES[i])).detail === 'memory', 3000);
  assert.ok(tier(k, 'memory').bytes <= MiB, 'memory budget held after promotion');
  assert.equal(gets(), PIECES.length);
});

test('memory budget held by bytes; memory evicts (or refuses) instead of growing', async (t) => {
  const k = await karasu(t, { layers: ['memory'], memoryMb: 1 });
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < PIECES.length; i++) {
      await getOk(k, `/c/piece/${i}`, PIECES[i]);
      const mem = tier(k, 'memory');
      assert.ok(mem.bytes <= mem.maxBytes, `memory ${mem.bytes} > budget ${mem.maxBytes}`);
      assert.equal(mem.maxBytes, MiB);
    }
  }
  const mem = tier(k, 'memory');
  assert.ok(mem.entries <= 3 && mem.entries >= 1, `entries ${mem.entries}`);
  assert.ok(gets() > PIECES.length, 'what did not fit was fetched again');
});

test('disk budget held by bytes: LRU eviction, files on disk within the budget', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['disk'], diskDir: dir, diskMb: 1 });
  for (let i = 0; i < PIECES.length; i++) {
    await getOk(k, `/c/piece/${i}`, PIECES[i]);
    // Each commit has run when the next fill starts; wait for it so the order is the request order.
    await until(`piece ${i} committed`, () => k.karasu.cache!.fills.size === 0);
    const disk = tier(k, 'disk');
    assert.ok(disk.bytes <= MiB, `disk stats ${disk.bytes} > budget`);
    const onDisk = (await filesUnder(join(dir, 'entries'))).filter((f) => f.path.endsWith('.body'));
    assert.ok(onDisk.reduce((a, f) => a + f.size, 0) <= MiB, 'body files within the budget');
  }
  const disk = tier(k, 'disk');
  assert.equal(disk.entries, 3);
  assert.equal(disk.evictions, 3);
  // The newest are kept, the oldest were evicted.
  relay.reset();
  const newest = await getOk(k, '/c/piece/5', PIECES[5]);
  assert.equal(newest.xcache, 'HIT');
  assert.equal(gets(), 0);
  const oldest = await getOk(k, '/c/piece/0', PIECES[0]);
  assert.equal(oldest.xcache, 'MISS');
  assert.equal(gets(), 1);
});

test('an object over memory max_item_size skips memory but is kept on disk', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['memory', 'disk'], memoryItemMb: 1, diskDir: dir });
  assert.equal((await getOk(k, '/c/big.bin', BIG)).xcache, 'MISS');
  await until('big.bin on disk', () => tier(k, 'disk').entries === 1);
  assert.equal(tier(k, 'memory').entries, 0, 'over the memory item size: not in memory');
  for (let i = 0; i < 3; i++) {
    const r = await getOk(k, '/c/big.bin', BIG);
    assert.equal(r.xcache, 'HIT');
    assert.equal(r.detail, 'disk', 'never promoted into a tier it does not fit');
  }
  assert.equal(tier(k, 'memory').entries, 0);
  assert.equal(gets(), 1);
});

test('per-bucket max_item_size_mb: larger objects are not cached at all; smaller ones are', async (t) => {
  const k = await karasu(t, { layers: ['memory'] }, [bucket({ cache: { max_item_size_mb: 1 } })]);
  for (let i = 0; i < 2; i++) {
    const r = await getOk(k, '/c/big.bin', BIG);
    assert.notEqual(r.xcache, 'HIT');
  }
  assert.equal(gets(), 2, 'every request for the oversized object reaches S3');
  await getOk(k, '/c/small.bin', SMALL);
  assert.equal((await getOk(k, '/c/small.bin', SMALL)).xcache, 'HIT');
  assert.equal(tier(k, 'memory').entries, 1);
});

test('per-bucket cache.enabled: false → BYPASS, every GET and HEAD reaches S3', async (t) => {
  const k = await karasu(t, { layers: ['memory'] }, [bucket({ name: 'plain', prefix: '/p', cache: { enabled: false } }), bucket()]);
  for (let i = 0; i < 3; i++) {
    const r = await getOk(k, '/p/small.bin', SMALL);
    assert.equal(r.xcache, 'BYPASS');
    assert.match(r.cacheStatus, /fwd=bypass/);
  }
  const head = await get(k, '/p/small.bin', {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.xcache, 'BYPASS');
  assert.equal(relay.stats().gets, 3);
  assert.equal(relay.stats().heads, 1);
  assert.equal(tier(k, 'memory').entries, 0);
  // The cached bucket on the same instance still caches.
  await getOk(k, '/c/small.bin', SMALL);
  assert.equal((await getOk(k, '/c/small.bin', SMALL)).xcache, 'HIT');
});

test('Cache-Control no-store and private from S3 are not stored', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir });
  for (const [path, expected] of [
    ['/c/nostore.bin', NOSTORE],
    ['/c/private.bin', PRIVATE],
  ] as const) {
    for (let i = 0; i < 2; i++) {
      const r = await getOk(k, path, expected);
      assert.notEqual(r.xcache, 'HIT', path);
      assert.match(r.cacheStatus, /uncacheable/, path);
    }
  }
  assert.equal(gets(), 4);
  assert.equal(tier(k, 'memory').entries, 0);
  assert.equal(tier(k, 'disk').entries, 0);
  assert.equal((await filesUnder(join(dir, 'entries'))).length, 0);
});

test('/metrics: cache request counters per bucket and tier gauges match the stats', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir });
  await getOk(k, '/c/small.bin', SMALL);
  await until('disk entry', () => tier(k, 'disk').entries === 1);
  await getOk(k, '/c/small.bin', SMALL);
  await getOk(k, '/c/small.bin', SMALL);
  await getOk(k, '/c/nostore.bin', NOSTORE);
  const res = await request(`${k.url}/metrics`);
  assert.equal(res.status, 200);
  const text = res.body.toString();
  const value = (line: string): number => {
    const m = new RegExp(`^${line.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
    assert.ok(m, `metric ${line} in /metrics`);
    return Number(m[1]);
  };
  assert.equal(value('karasu_cache_requests_total{bucket="core",result="hit"}'), 2);
  assert.equal(value('karasu_cache_requests_total{bucket="core",result="miss"}'), 1);
  assert.equal(value('karasu_cache_requests_total{bucket="core",result="bypass"}'), 1);
  const stats = k.karasu.cache!.cache.stats().tiers;
  for (const name of ['memory', 'disk'] as const) {
    assert.equal(value(`karasu_cache_entries{tier="${name}"}`), stats[name].entries);
    assert.equal(value(`karasu_cache_bytes{tier="${name}"}`), stats[name].bytes);
    assert.equal(value(`karasu_cache_max_bytes{tier="${name}"}`), stats[name].maxBytes);
    assert.equal(value(`karasu_cache_tier_available{tier="${name}"}`), 1);
  }
  assert.equal(value('karasu_cache_tier_hits_total{tier="memory"}'), 2);
  assert.equal(value('karasu_cache_bytes_total{bucket="core",source="s3"}'), SMALL.length + NOSTORE.length);
});

test('bytes_from_cache counts body bytes actually served (HEAD and 304 send none)', async (t) => {
  const k = await karasu(t, { layers: ['memory'] });
  const miss = await getOk(k, '/c/small.bin', SMALL);
  await get(k, '/c/small.bin', {}, 'HEAD');
  await get(k, '/c/small.bin', { 'if-none-match': String(miss.headers.etag) });
  const stats = () => k.karasu.cache!.cache.stats().buckets.core;
  await until('HEAD and 304 logged', () => k.karasu.inflight === 0);
  assert.equal(stats().bytes_from_cache, 0, 'a MISS, a HEAD and a 304 served no cached body bytes');
  assert.equal(stats().bytes_from_s3, SMALL.length);
  await getOk(k, '/c/small.bin', SMALL);
  await get(k, '/c/small.bin', { range: 'bytes=0-9' });
  await until('counted', () => stats().bytes_from_cache === SMALL.length + 10);
});
