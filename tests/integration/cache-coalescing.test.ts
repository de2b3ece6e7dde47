// Request coalescing over real HTTP: concurrent cold requests make one upstream GET, a client joining a
// slow fill mid-stream still gets every byte, an upstream failure mid-fill fails every waiter and
// caches nothing. The relay in front of s3rver holds or cuts bodies on demand.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { sha256 } from '../helpers/http.js';
import { startS3, type S3Handle } from '../helpers/s3.js';
import type { KarasuUnderTest } from '../helpers/karasu.js';
import { body, filesUnder, get, getOk, KiB, MiB, startCached, startCtlRelay, tier, until, type CacheOpts, type CtlRelay } from '../helpers/cache-kit.js';
import { cacheKey } from '../../src/cache/types.js';

const HOT = body(700 * KiB, 31);
const SLOW = body(2 * MiB, 32);
const BROKEN = body(2 * MiB, 33);
const LARGE = body(9 * MiB, 34); // over the 8 MiB spool: streamed (and written to disk) as it arrives
const LARGE_BROKEN = body(9 * MiB, 35);

let s3: S3Handle;
let relay: CtlRelay;
const dirs: string[] = [];

before(async () => {
  s3 = await startS3({ buckets: { co: { 'hot.bin': HOT, 'slow.bin': SLOW, 'broken.bin': BROKEN, 'large.bin': LARGE, 'large-broken.bin': LARGE_BROKEN } } });
  relay = await startCtlRelay(s3.endpoint);
});
after(async () => {
  await relay?.stop();
  await s3?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function karasu(t: TestContext, cache: CacheOpts): Promise<KarasuUnderTest> {
  const k = await startCached(cache, [{ name: 'co', prefix: '/co', endpoint: relay.url, bucket: 'co' }]);
  t.after(() => k.stop());
  relay.reset();
  relay.mode = {};
  return k;
}

async function tmpDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'karasu-cache-co-'));
  dirs.push(d);
  return d;
}

/** A GET whose progress can be watched: bytes received so far, headers, and how it ended. */
interface Streaming {
  received: number;
  headers: IncomingHttpHeaders | null;
  status: number;
  /** Resolves when the response ends or fails; `complete` false when the body was cut short. */
  done: Promise<{ complete: boolean; body: Buffer; error?: Error }>;
}
function streamGet(url: string, headers: Record<string, string> = {}): Streaming {
  const s: Streaming = { received: 0, headers: null, status: 0, done: Promise.resolve({ complete: false, body: Buffer.alloc(0) }) };
  s.done = new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const req = httpRequest(url, { agent: false, headers }, (res) => {
      s.headers = res.headers;
      s.status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        s.received += c.length;
      });
      res.on('end', () => resolve({ complete: res.complete, body: Buffer.concat(chunks) }));
      res.on('error', (error) => resolve({ complete: false, body: Buffer.concat(chunks), error }));
      res.on('aborted', () => resolve({ complete: false, body: Buffer.concat(chunks), error: new Error('aborted') }));
    });
    req.on('error', (error) => resolve({ complete: false, body: Buffer.concat(chunks), error }));
    req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
  return s;
}

test('50 concurrent cold requests → exactly 1 upstream GET, 50 identical correct bodies', async (t) => {
  const k = await karasu(t, { layers: ['memory'] });
  // S3's answer is held until all 50 requests are inside Karasu, so every one of them is a cold miss.
  relay.mode = { holdHeaders: true };
  const pending = Array.from({ length: 50 }, () => get(k, '/co/hot.bin'));
  await until('50 requests in Karasu, one at S3', () => k.karasu.inflight === 50 && relay.holding === 1, 10_000);
  relay.release();
  const results = await Promise.all(pending);
  const hash = sha256(HOT);
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), hash);
    assert.equal(r.xcache, 'MISS');
  }
  assert.equal(results.filter((r) => r.cacheStatus.includes('collapsed')).length, 49, 'one leader, 49 joined');
  assert.equal(relay.stats().gets, 1);
  assert.equal(relay.stats().bodyBytes, HOT.length);
  const after = await getOk(k, '/co/hot.bin', HOT);
  assert.equal(after.xcache, 'HIT');
  assert.equal(relay.stats().gets, 1);
});

test('server.coalescing.enabled: false → every concurrent cold request makes its own upstream GET', async (t) => {
  const k = await startCached({ layers: ['memory'] }, [{ name: 'co', prefix: '/co', endpoint: relay.url, bucket: 'co' }], {
    server: { coalescing: { enabled: false } },
  });
  t.after(() => k.stop());
  relay.reset();
  relay.mode = { holdHeaders: true };
  const pending = Array.from({ length: 5 }, () => get(k, '/co/hot.bin'));
  await until('5 requests at S3', () => relay.holding === 5, 10_000);
  relay.mode = {};
  relay.release();
  for (const r of await Promise.all(pending)) {
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), sha256(HOT));
    assert.doesNotMatch(r.cacheStatus, /collapsed/);
  }
  assert.equal(relay.stats().gets, 5);
  assert.equal((await getOk(k, '/co/hot.bin', HOT)).xcache, 'HIT', 'still cached');
});

test('a client joining a slow fill mid-stream gets the full body; both stream before the fill ends', async (t) => {
  const k = await karasu(t, { layers: ['memory'] });
  relay.mode = { holdAfter: 256 * KiB };
  const first = streamGet(`${k.url}/co/slow.bin`);
  await until('first client has part of the body', () => first.received > 0 && relay.holding === 1);
  assert.ok(first.received <= 256 * KiB, 'the fill is incomplete');
  const second = streamGet(`${k.url}/co/slow.bin`);
  // The joiner starts from byte 0 and receives what already arrived, while S3 is still held.
  await until('second client has everything that arrived so far', () => second.received === relay.heldAt && first.received === relay.heldAt);
  assert.equal(second.status, 200);
  assert.match(String(second.headers!['cache-status']), /collapsed/);
  // Ranges join the fill too: one already covered by the arrived bytes is answered at once …
  const head = await get(k, '/co/slow.bin', { range: 'bytes=0-99' });
  assert.equal(head.status, 206);
  assert.deepEqual(head.body, SLOW.subarray(0, 100));
  // … one past them waits for the bytes.
  const tail = streamGet(`${k.url}/co/slow.bin`, { range: 'bytes=-100' });
  relay.release();
  const [a, b, c] = await Promise.all([first.done, second.done, tail.done]);
  for (const r of [a, b]) {
    assert.ok(r.complete, `complete body (${r.error?.message ?? ''})`);
    assert.equal(sha256(r.body), sha256(SLOW));
  }
  assert.equal(tail.status, 206);
  assert.equal(tail.headers!['content-range'], `bytes ${SLOW.length - 100}-${SLOW.length - 1}/${SLOW.length}`);
  assert.deepEqual(c.body, SLOW.subarray(SLOW.length - 100));
  assert.equal(relay.stats().gets, 1);
  await until('stored', () => tier(k, 'memory').entries === 1);
  assert.equal((await getOk(k, '/co/slow.bin', SLOW)).xcache, 'HIT');
});

test('the client that started a fill leaves mid-body: the fill goes on, is cached, and serves the next client', async (t) => {
  const k = await karasu(t, { layers: ['memory'] });
  relay.mode = { holdAfter: 256 * KiB };
  const req = httpRequest(`${k.url}/co/slow.bin`, { agent: false });
  let got = 0;
  req.on('response', (res) => res.on('data', (c: Buffer) => (got += c.length)));
  req.on('error', () => {});
  req.end();
  await until('first client mid-body', () => got > 0 && relay.holding === 1);
  req.destroy();
  await until('Karasu saw the client leave', () => k.karasu.inflight === 0);
  relay.release();
  await until('cached although its client left', () => tier(k, 'memory').entries === 1);
  assert.equal((await getOk(k, '/co/slow.bin', SLOW)).xcache, 'HIT');
  assert.equal(relay.stats().gets, 1);
});

test('upstream failure mid-fill fails every waiter (no 200 with a short body) and caches nothing', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir });
  relay.mode = { holdAfter: 300 * KiB };
  const first = streamGet(`${k.url}/co/broken.bin`);
  await until('first client mid-body', () => first.received > 0 && relay.holding === 1);
  const second = streamGet(`${k.url}/co/broken.bin`);
  await until('second client joined', () => second.received === relay.heldAt);
  // Now S3 dies: the held body is cut after what was already sent.
  relay.release({ cut: true });
  const results = await Promise.all([first.done, second.done]);
  for (const r of results) {
    assert.ok(!r.complete, 'the response must not end as if complete');
    assert.ok(r.body.length < BROKEN.length);
  }
  await until('fill settled', () => k.karasu.cache!.fills.size === 0);
  assert.equal(await k.karasu.cache!.cache.lookup(cacheKey('co', 'broken.bin')), null, 'nothing cached');
  assert.equal(tier(k, 'disk').entries, 0);

  // A later request is an ordinary miss and succeeds.
  relay.mode = {};
  relay.reset();
  const ok = await getOk(k, '/co/broken.bin', BROKEN);
  assert.equal(ok.xcache, 'MISS');
  assert.equal(relay.stats().gets, 1);
});

for (const [label, objectKey, expected] of [
  ['small (memory spool)', 'broken.bin', BROKEN],
  ['large (disk spool)', 'large-broken.bin', LARGE_BROKEN],
] as const) {
  /** Two clients on one fill whose body has a byte inverted near the end (same length: only the checksum tells). */
  const corruptFill = async (t: TestContext) => {
    const dir = await tmpDir();
    const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir, memoryItemMb: 4 });
    relay.mode = { holdAfter: 64 * KiB, flipAt: expected.length - 10 };
    const first = streamGet(`${k.url}/co/${objectKey}`);
    await until('first client mid-body', () => first.received > 0 && relay.holding === 1);
    const second = streamGet(`${k.url}/co/${objectKey}`);
    await until('second client joined', () => second.received === first.received);
    relay.release();
    const results = await Promise.all([first.done, second.done]);
    await until('fill settled', () => k.karasu.cache!.fills.size === 0);
    relay.mode = {};
    return { k, results };
  };

  test(`${label}: a body that does not match S3's ETag (MD5) is not cached; the next request refetches it`, async (t) => {
    const { k } = await corruptFill(t);
    assert.equal(await k.karasu.cache!.cache.lookup(cacheKey('co', objectKey)), null, 'nothing cached');
    relay.reset();
    assert.equal((await getOk(k, `/co/${objectKey}`, expected)).xcache, 'MISS');
    assert.equal(relay.stats().gets, 1);
  });

  test(
    `${label}: a body that does not match S3's ETag (MD5) never reaches a client as a complete 200`,
    async (t) => {
      const { results } = await corruptFill(t);
      for (const r of results) {
        assert.ok(!r.complete, 'the response must fail, not complete');
        assert.ok(r.body.length < expected.length, 'the last bytes are withheld');
      }
    },
  );
}

test('a large object (spooled to disk) cut mid-body: every waiter fails, no entry, no tmp file left', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir, memoryItemMb: 1 });
  relay.mode = { holdAfter: 3 * MiB };
  const first = streamGet(`${k.url}/co/large-broken.bin`);
  await until('first client mid-body', () => first.received > 0 && relay.holding === 1);
  const second = streamGet(`${k.url}/co/large-broken.bin`);
  await until('second client joined and caught up', () => second.status === 200 && second.received === first.received, 10_000);
  relay.release({ cut: true });
  for (const r of await Promise.all([first.done, second.done])) {
    assert.ok(!r.complete, 'no complete response from a cut body');
    assert.ok(r.body.length < LARGE_BROKEN.length);
  }
  assert.equal(relay.stats().gets, 1);
  await until('tmp emptied', async () => (await filesUnder(join(dir, 'tmp'))).length === 0);
  assert.equal(tier(k, 'disk').entries, 0);
  assert.equal((await filesUnder(join(dir, 'entries'))).length, 0);
  relay.mode = {};
  relay.reset();
  assert.equal((await getOk(k, '/co/large-broken.bin', LARGE_BROKEN)).xcache, 'MISS');
  await until('committed to disk', () => tier(k, 'disk').entries === 1);
  assert.equal((await getOk(k, '/co/large-broken.bin', LARGE_BROKEN)).detail, 'disk');
  assert.equal(relay.stats().gets, 1);
});

test('concurrent cold requests for a large (disk-spooled) object → one upstream GET; a late joiner gets it all', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir, memoryItemMb: 1 });
  relay.mode = { holdHeaders: true };
  const pending = Array.from({ length: 4 }, () => get(k, '/co/large.bin'));
  await until('4 requests in Karasu, one at S3', () => k.karasu.inflight === 4 && relay.holding === 1, 10_000);
  relay.mode = {};
  relay.release();
  const late = get(k, '/co/large.bin');
  const lateRange = get(k, '/co/large.bin', { range: 'bytes=-100' });
  const results = await Promise.all([...pending, late]);
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.equal(sha256(r.body), sha256(LARGE));
  }
  const ranged = await lateRange;
  assert.equal(ranged.status, 206);
  assert.deepEqual(ranged.body, LARGE.subarray(LARGE.length - 100));
  assert.equal(relay.stats().gets, 1, `upstream GETs for 5 concurrent cold requests: ${relay.stats().gets}`);
  await until('committed to disk', () => tier(k, 'disk').entries === 1);
  assert.equal(tier(k, 'memory').entries, 0, 'over the memory item size');
  assert.equal((await getOk(k, '/co/large.bin', LARGE)).detail, 'disk');
  assert.equal(relay.stats().gets, 1);
});
