// Karasu reads S3 answers into reused buffers and writes body bytes to clients straight from them
// (src/upstream/body.ts). A buffer handed back too early would be overwritten by another stream's read
// while its bytes still wait in a slow client's socket: these tests run many distinct objects at once,
// with slow readers, ranges, clients that leave midway, and a cache fill beside direct relays, and
// check every byte.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { karasuYaml, startKarasuYaml, type KarasuUnderTest } from '../helpers/karasu.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'backend-reads-u1';
const MiB = 1024 * 1024;
/** Sizes off any 64 KiB boundary, so reads and chunks never line up with objects. */
const OBJECTS = Array.from({ length: 6 }, (_, i) => randomBytes(2 * MiB + 777 * (i + 1)));

let s3: S3Handle;
let karasu: KarasuUnderTest;
let cached: KarasuUnderTest;

const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Got {
  status: number;
  body: Buffer;
  headers: Record<string, string | string[] | undefined>;
}

/**
 * GET with a reader that pauses for `pauseMs` after every `every` bytes, and (`stallMs`) reads nothing at
 * first: the kernel's socket buffers fill, and Karasu's writes queue in user space, holding read buffers.
 */
function slowGet(
  url: string,
  opts: { headers?: Record<string, string>; every?: number; pauseMs?: number; stallMs?: number; leaveAfter?: number } = {},
): Promise<Got | 'left'> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: opts.headers, agent: false }, (res) => {
      if (opts.stallMs) {
        res.pause();
        setTimeout(() => res.resume(), opts.stallMs);
      }
      const parts: Buffer[] = [];
      let received = 0;
      let nextPause = opts.every ?? Infinity;
      res.on('data', (chunk: Buffer) => {
        parts.push(chunk);
        received += chunk.length;
        if (opts.leaveAfter !== undefined && received >= opts.leaveAfter) {
          req.destroy();
          resolve('left');
          return;
        }
        if (received >= nextPause) {
          nextPause += opts.every!;
          res.pause();
          setTimeout(() => res.resume(), opts.pauseMs ?? 10);
        }
      });
      res.on('end', () => {
        if (!res.complete) return reject(new Error('body cut short'));
        resolve({ status: res.statusCode!, body: Buffer.concat(parts), headers: res.headers });
      });
      res.on('error', reject);
    });
    req.on('error', (err) => (opts.leaveAfter !== undefined ? resolve('left') : reject(err)));
    req.setTimeout(60_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

before(async () => {
  const objects: Record<string, Buffer> = {};
  OBJECTS.forEach((body, i) => (objects[`o${i}.bin`] = body));
  s3 = await startS3({ buckets: { [BACKEND]: objects } });
  const bucket = { name: 'reads', prefix: '/reads', endpoint: s3.endpoint, bucket: BACKEND, s3: { connection_pool_size: 4 } };
  karasu = await startKarasuYaml(karasuYaml({ buckets: [bucket] }));
  cached = await startKarasuYaml(
    karasuYaml({
      buckets: [bucket],
      top: { cache: { enabled: true, cache_layers: ['memory'], memory: { max_cache_size_mb: 64, max_item_size_mb: 8, default_ttl_seconds: 60 } } },
    }),
  );
});

after(async () => {
  await karasu?.stop();
  await cached?.stop();
  await s3?.stop();
});

const url = (k: KarasuUnderTest, i: number): string => `http://127.0.0.1:${k.port}/reads/o${i}.bin`;

describe('bodies relayed from reused read buffers', () => {
  test('eighteen downloads of six objects at once, fast and slow readers on four S3 sockets: every byte right', async () => {
    const runs = OBJECTS.flatMap((_, i) => [
      slowGet(url(karasu, i)),
      slowGet(url(karasu, i), { every: 192 * 1024, pauseMs: 15, stallMs: 300 }),
      slowGet(url(karasu, i), { every: 40 * 1024, pauseMs: 2 }),
    ]);
    const results = await Promise.all(runs);
    results.forEach((got, n) => {
      const i = Math.floor(n / 3);
      assert.notEqual(got, 'left');
      const { status, body } = got as Got;
      assert.equal(status, 200);
      assert.equal(body.length, OBJECTS[i]!.length, `download ${n}: length`);
      assert.equal(digest(body), digest(OBJECTS[i]!), `download ${n}: bytes`);
    });
  });

  test('ranges (relayed as S3 sends them, and cut from a larger answer) beside clients that leave midway', async () => {
    const obj = OBJECTS[2]!;
    const runs: Promise<Got | 'left'>[] = [];
    for (let i = 0; i < 6; i++) runs.push(slowGet(url(karasu, i), { leaveAfter: 300_000 + i * 50_000 }));
    runs.push(slowGet(url(karasu, 2), { headers: { range: 'bytes=70000-1500000' }, every: 100_000, pauseMs: 5 }));
    runs.push(slowGet(url(karasu, 2), { headers: { range: 'bytes=-99999' } }));
    runs.push(slowGet(url(karasu, 2), { every: 256 * 1024, pauseMs: 10 }));
    const results = await Promise.all(runs);
    assert.deepEqual(results.slice(0, 6), Array(6).fill('left'));
    const [range, suffix, whole] = results.slice(6) as Got[];
    assert.equal(range!.status, 206);
    assert.equal(range!.headers['content-range'], `bytes 70000-1500000/${obj.length}`);
    assert.equal(digest(range!.body), digest(obj.subarray(70000, 1500001)));
    assert.equal(suffix!.status, 206);
    assert.equal(digest(suffix!.body), digest(obj.subarray(obj.length - 99999)));
    assert.equal(digest(whole!.body), digest(obj));
  });

  test('cache fills (bytes copied out) and relays of other objects at once: both right, and the cached copies too', async () => {
    const fills = [0, 1, 2].map((i) => slowGet(url(cached, i), { every: 128 * 1024, pauseMs: 5 }));
    const relays = [3, 4, 5].map((i) => slowGet(url(karasu, i), { every: 128 * 1024, pauseMs: 5 }));
    const results = (await Promise.all([...fills, ...relays])) as Got[];
    [0, 1, 2, 3, 4, 5].forEach((i) => assert.equal(digest(results[i]!.body), digest(OBJECTS[i]!), `object ${i}`));
    // Served from memory now: the stored copy must not share a buffer that was reused since.
    const again = (await Promise.all([0, 1, 2].map((i) => slowGet(url(cached, i))))) as Got[];
    again.forEach((got, i) => {
      assert.match(String(got.headers['x-cache']), /HIT/);
      assert.equal(digest(got.body), digest(OBJECTS[i]!), `cached object ${i}`);
    });
  });
});
