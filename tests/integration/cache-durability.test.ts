// The disk tier across restarts and crashes, over real HTTP: entries survive a restart (served from
// disk, then promoted to memory, zero upstream), a `kill -9` of a Karasu process mid-write leaves no
// partial entry and no tmp file, a corrupted body file is dropped and refetched, never served.
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { request, sha256 } from '../helpers/http.js';
import { startS3, type S3Handle } from '../helpers/s3.js';
import { PORT_VAR, spawnCli, type KarasuUnderTest } from '../helpers/karasu.js';
import { body, cacheYaml, filesUnder, get, getOk, KiB, MiB, startCached, startCtlRelay, tier, until, type CacheOpts, type CtlRelay } from '../helpers/cache-kit.js';

const OBJECTS = Array.from({ length: 3 }, (_, i) => body(50 * KiB + i, 40 + i));
const SMALL = body(200 * KiB, 44); // verified on read (≤ 1 MiB)
const MID = body(2 * MiB, 45); // verified while it streams (> 1 MiB)
const HUGE = body(12 * MiB, 46); // over the 8 MiB spool: written to disk while it streams
const QUARTERS = Array.from({ length: 4 }, (_, i) => body(400 * KiB, 70 + i));

let s3: S3Handle;
let relay: CtlRelay;
const dirs: string[] = [];

before(async () => {
  const objects: Record<string, Buffer> = { 'small.bin': SMALL, 'mid.bin': MID, 'huge.bin': HUGE };
  OBJECTS.forEach((o, i) => (objects[`o${i}.bin`] = o));
  QUARTERS.forEach((o, i) => (objects[`q${i}.bin`] = o));
  s3 = await startS3({ buckets: { dur: objects } });
  relay = await startCtlRelay(s3.endpoint);
});
after(async () => {
  await relay?.stop();
  await s3?.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tmpDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'karasu-cache-dur-'));
  dirs.push(d);
  return d;
}

const buckets = () => [{ name: 'dur', prefix: '/d', endpoint: relay.url, bucket: 'dur' }];

async function karasu(t: TestContext, cache: CacheOpts): Promise<KarasuUnderTest> {
  const k = await startCached(cache, buckets());
  let stopped = false;
  t.after(() => (stopped ? undefined : k.stop()));
  const stop = k.stop;
  k.stop = () => ((stopped = true), stop());
  return k;
}

test('restart keeps disk entries: HIT from disk with zero upstream, then promoted to memory', async (t) => {
  const dir = await tmpDir();
  const first = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir });
  relay.reset();
  for (let i = 0; i < OBJECTS.length; i++) assert.equal((await getOk(first, `/d/o${i}.bin`, OBJECTS[i])).xcache, 'MISS');
  await until('all on disk', () => tier(first, 'disk').entries === OBJECTS.length);
  assert.equal((await getOk(first, '/d/o0.bin', OBJECTS[0])).detail, 'memory');
  await first.stop();

  relay.reset();
  const second = await karasu(t, { layers: ['memory', 'disk'], diskDir: dir });
  assert.equal(tier(second, 'disk').entries, OBJECTS.length, 'index rebuilt from disk');
  for (let i = 0; i < OBJECTS.length; i++) {
    const r = await getOk(second, `/d/o${i}.bin`, OBJECTS[i]);
    assert.equal(r.xcache, 'HIT');
    assert.equal(r.detail, 'disk');
  }
  for (let i = 0; i < OBJECTS.length; i++) {
    await until(`o${i} promoted`, async () => (await getOk(second, `/d/o${i}.bin`, OBJECTS[i])).detail === 'memory', 2000);
  }
  assert.equal(relay.stats().requests, 0, 'nothing from S3 after the restart');
});

test('restart with a smaller disk budget: the least recently used entries go, the budget holds at start-up', async (t) => {
  const dir = await tmpDir();
  const first = await karasu(t, { layers: ['disk'], diskDir: dir, diskMb: 2 });
  for (let i = 0; i < QUARTERS.length; i++) {
    await getOk(first, `/d/q${i}.bin`, QUARTERS[i]);
    await until(`q${i} committed`, () => tier(first, 'disk').entries === i + 1);
    // Distinct mtimes: the LRU order a restart recovers.
    await new Promise((r) => setTimeout(r, 15));
  }
  await first.stop();

  relay.reset();
  const k = await karasu(t, { layers: ['disk'], diskDir: dir, diskMb: 1 });
  const disk = tier(k, 'disk');
  assert.ok(disk.bytes <= MiB, `disk ${disk.bytes} within the new 1 MiB budget`);
  assert.equal(disk.entries, 2);
  const bodies = (await filesUnder(join(dir, 'entries'))).filter((f) => f.path.endsWith('.body'));
  assert.ok(bodies.reduce((a, f) => a + f.size, 0) <= MiB, 'files on disk within the budget');
  assert.equal((await getOk(k, '/d/q3.bin', QUARTERS[3])).xcache, 'HIT');
  assert.equal((await getOk(k, '/d/q2.bin', QUARTERS[2])).xcache, 'HIT');
  assert.equal(relay.stats().gets, 0);
  assert.equal((await getOk(k, '/d/q0.bin', QUARTERS[0])).xcache, 'MISS');
});

test('kill -9 of a Karasu process mid-write of a large object → restart serves no partial entry; tmp cleaned', async (t) => {
  const dir = await tmpDir();
  const config = join(dir, 'karasu.yaml');
  const yaml = cacheYaml({ layers: ['memory', 'disk'], diskDir: join(dir, 'cache'), memoryItemMb: 1 }, buckets(), {
    top: { logging: { level: 'info', format: 'json' } },
  }).replace(PORT_VAR, '0');
  await writeFile(config, yaml);
  const child = spawnCli(['serve', '-c', config]);
  t.after(() => child.stop());
  let url = '';
  await until(
    'karasu listening',
    () => {
      assert.equal(child.child.exitCode, null, `karasu exited: ${child.stderr()}${child.stdout()}`);
      const line = child.stdout().split('\n').find((l) => l.includes('karasu listening'));
      if (line) url = (JSON.parse(line) as { url: string }).url;
      return url !== '';
    },
    20_000,
  );

  relay.reset();
  relay.mode = { holdAfter: 5 * MiB };
  const client = request(`${url}/d/huge.bin`).then(
    () => 'complete',
    () => 'failed',
  );
  // The body is half-way: 5 MiB are in Karasu's tmp file, the rest is held at S3.
  await until('5 MiB written to a tmp file', async () => {
    const tmp = await filesUnder(join(dir, 'cache', 'tmp'));
    return relay.holding === 1 && tmp.some((f) => f.size === 5 * MiB);
  });
  child.child.kill('SIGKILL');
  await child.stop();
  assert.equal(await client, 'failed', 'the client of the killed process did not get a complete body');
  relay.release({ cut: true });
  relay.mode = {};
  const leftovers = await filesUnder(join(dir, 'cache', 'tmp'));
  assert.ok(leftovers.length > 0, 'the crash left a partial tmp file behind (the kill landed mid-write)');
  assert.equal((await filesUnder(join(dir, 'cache', 'entries'))).filter((f) => f.path.endsWith('.meta')).length, 0);

  // Restart on the same cache_dir: tmp emptied, no entry for the object, served correctly from S3.
  relay.reset();
  const k = await karasu(t, { layers: ['memory', 'disk'], diskDir: join(dir, 'cache'), memoryItemMb: 1 });
  assert.equal((await filesUnder(join(dir, 'cache', 'tmp'))).length, 0, 'tmp cleaned at start-up');
  assert.equal(tier(k, 'disk').entries, 0);
  const miss = await getOk(k, '/d/huge.bin', HUGE);
  assert.equal(miss.xcache, 'MISS');
  assert.equal(relay.stats().gets, 1);
  await until('committed', () => tier(k, 'disk').entries === 1);
  const hit = await getOk(k, '/d/huge.bin', HUGE);
  assert.equal(hit.xcache, 'HIT');
  assert.equal(hit.detail, 'disk');
  assert.equal(relay.stats().gets, 1);
});

async function flipBytes(dir: string, at: number): Promise<void> {
  const bodies = (await filesUnder(join(dir, 'entries'))).filter((f) => f.path.endsWith('.body'));
  assert.equal(bodies.length, 1);
  const fh = await open(bodies[0].path, 'r+');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, at);
    for (let i = 0; i < 4; i++) b[i] ^= 0xff;
    await fh.write(b, 0, 4, at);
  } finally {
    await fh.close();
  }
}

test('a corrupted body file (≤ 1 MiB) is dropped and refetched, never served', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['disk'], diskDir: dir });
  relay.reset();
  await getOk(k, '/d/small.bin', SMALL);
  await until('on disk', () => tier(k, 'disk').entries === 1);
  assert.equal((await getOk(k, '/d/small.bin', SMALL)).xcache, 'HIT');
  await flipBytes(dir, 100 * KiB);

  const r = await getOk(k, '/d/small.bin', SMALL);
  assert.equal(r.xcache, 'MISS', 'refetched');
  assert.equal(relay.stats().gets, 2);
  assert.equal(tier(k, 'disk').corrupt, 1);
  await until('stored again', () => tier(k, 'disk').entries === 1 && k.karasu.cache!.fills.size === 0);
  assert.equal((await getOk(k, '/d/small.bin', SMALL)).xcache, 'HIT');
  assert.equal(relay.stats().gets, 2);
});

/** mid.bin cached on disk by one Karasu, bytes flipped at `at` while it is down, a new Karasu on the dir. */
async function corruptedAfterRestart(t: TestContext, at: number): Promise<KarasuUnderTest> {
  const dir = await tmpDir();
  const first = await karasu(t, { layers: ['disk'], diskDir: dir });
  await getOk(first, '/d/mid.bin', MID);
  await until('on disk', () => tier(first, 'disk').entries === 1);
  await first.stop();
  await flipBytes(dir, at);
  relay.reset();
  const k = await karasu(t, { layers: ['disk'], diskDir: dir });
  assert.equal(tier(k, 'disk').entries, 1, 'same size: the corruption is not visible at start-up');
  return k;
}

test('a body file (> 1 MiB) corrupted while Karasu runs never reaches a client complete; the entry is dropped and refetched', async (t) => {
  const dir = await tmpDir();
  const k = await karasu(t, { layers: ['disk'], diskDir: dir });
  relay.reset();
  await getOk(k, '/d/mid.bin', MID);
  await until('on disk', () => tier(k, 'disk').entries === 1 && k.karasu.cache!.fills.size === 0);
  const hit = await getOk(k, '/d/mid.bin', MID);
  assert.equal(hit.detail, 'disk');
  // Ranges and conditionals on a large (file-backed) disk entry.
  for (const [range, start, end] of [
    ['bytes=-100', MID.length - 100, MID.length - 1],
    ['bytes=1048570-1048589', 1048570, 1048589],
  ] as const) {
    const r = await get(k, '/d/mid.bin', { range });
    assert.equal(r.status, 206, range);
    assert.equal(r.headers['content-range'], `bytes ${start}-${end}/${MID.length}`);
    assert.deepEqual(r.body, MID.subarray(start, end + 1), range);
  }
  assert.equal((await get(k, '/d/mid.bin', { range: `bytes=${MID.length}-` })).status, 416);
  assert.equal((await get(k, '/d/mid.bin', { 'if-none-match': String(hit.headers.etag) })).status, 304);
  const head = await get(k, '/d/mid.bin', {}, 'HEAD');
  assert.equal(head.headers['content-length'], String(MID.length));
  assert.equal(relay.stats().requests, 1);
  await flipBytes(dir, MID.length - 1000);
  // Either the corrupt stream is cut (the client sees an incomplete body) or it is refetched: never wrong bytes.
  const firstTry = await get(k, '/d/mid.bin').catch((err: Error) => err);
  if (!(firstTry instanceof Error)) {
    assert.equal(firstTry.status, 200);
    assert.equal(sha256(firstTry.body), sha256(MID), 'a complete 200 must carry the right bytes');
  }
  await until('corrupt entry dropped', () => tier(k, 'disk').corrupt === 1 || relay.stats().gets > 1);
  await getOk(k, '/d/mid.bin', MID);
  assert.equal(relay.stats().gets, 2, 'refetched from S3 once');
  await until('stored again', () => tier(k, 'disk').entries === 1 && k.karasu.cache!.fills.size === 0);
  assert.equal((await getOk(k, '/d/mid.bin', MID)).xcache, 'HIT');
  assert.equal(relay.stats().gets, 2);
});

test(
  'a corrupted body file (> 1 MiB) is refetched transparently for the request that finds it',
  async (t) => {
    const k = await corruptedAfterRestart(t, 1000);
    await getOk(k, '/d/mid.bin', MID);
  },
);

test(
  'a corrupt file found while streaming is counted in the disk tier\'s corrupt stat',
  async (t) => {
    const k = await corruptedAfterRestart(t, 1000);
    await get(k, '/d/mid.bin').catch(() => null);
    await until('counted', () => tier(k, 'disk').corrupt === 1, 1000);
  },
);
