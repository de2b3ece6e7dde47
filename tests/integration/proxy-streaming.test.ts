// Streaming through Karasu run as its own process (`karasu serve`), so its memory can be measured:
// a 256 MiB object arrives intact with bounded RSS while the client reads slowly, and a client that
// leaves mid-download makes Karasu drop its upstream connection.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { request } from '../helpers/http.js';
import { karasuYaml, rssBytes, spawnCli, waitForHttp, type KarasuProcess } from '../helpers/karasu.js';
import { freePort } from '../helpers/ports.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const BACKEND = 'backend-big-s5';

/** 256 distinct 1 MiB chunks (a random block stamped with its index): misordered bytes change the hash. */
const BLOCK = randomBytes(MiB);
function* chunks(): Generator<Buffer> {
  for (let i = 0; i < SIZE / MiB; i++) {
    const c = Buffer.from(BLOCK);
    c.writeUInt32BE(i, 0);
    c.writeUInt32BE(i, MiB - 4);
    yield c;
  }
}

/** A TCP pass-through that counts open connections and bytes sent back to the client (Karasu). */
interface TcpTap {
  port: number;
  open: number;
  opened: number;
  bytesDown: number;
  close(): Promise<void>;
}
async function startTap(targetPort: number): Promise<TcpTap> {
  const sockets = new Set<Socket>();
  const tap: TcpTap = { port: 0, open: 0, opened: 0, bytesDown: 0, close: async () => {} };
  const server: Server = createServer((client) => {
    tap.open++;
    tap.opened++;
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    upstream.on('data', (d: Buffer) => (tap.bytesDown += d.length));
    client.pipe(upstream);
    upstream.pipe(client);
    let closed = false;
    const done = () => {
      if (closed) return;
      closed = true;
      tap.open--;
      client.destroy();
      upstream.destroy();
    };
    client.on('close', done);
    upstream.on('close', done);
    client.on('error', done);
    upstream.on('error', done);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  tap.port = (server.address() as { port: number }).port;
  tap.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return tap;
}

let s3: S3Handle;
let tap: TcpTap;
let dir: string;
let karasu: KarasuProcess;
let url: string;
let expectedSha: string;

before(async () => {
  s3 = await startS3({ buckets: { [BACKEND]: { 'small.txt': 'small' } } });
  const hash = createHash('sha256');
  for (const c of chunks()) hash.update(c);
  expectedSha = hash.digest('hex');
  // Streamed upload (s3rverClient sends it plain, not aws-chunked: requestChecksumCalculation WHEN_REQUIRED).
  await s3.client.send(
    new PutObjectCommand({ Bucket: BACKEND, Key: 'big.bin', Body: Readable.from(chunks()), ContentLength: SIZE, ContentType: 'video/mp4' }),
  );
  tap = await startTap(s3.port);

  dir = await mkdtemp(join(tmpdir(), 'karasu-stream-'));
  const file = join(dir, 'karasu.yaml');
  await writeFile(
    file,
    karasuYaml({
      buckets: [
        { name: 'big', prefix: '/big', endpoint: s3.endpoint, bucket: BACKEND },
        { name: 'tapped', prefix: '/tapped', endpoint: `http://127.0.0.1:${tap.port}`, bucket: BACKEND },
      ],
      top: { logging: { level: 'warn', format: 'json' } },
    }),
  );
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    karasu = spawnCli(['serve', '-c', file], { KARASU_TEST_PORT: String(port) });
    url = `http://127.0.0.1:${port}`;
    try {
      await waitForHttp(`${url}/health`, 20_000, () => karasu.child.exitCode === null);
      break;
    } catch (err) {
      await karasu.stop();
      if (attempt >= 2) throw new Error(`karasu serve did not start: ${(err as Error).message}\n${karasu.stderr()}\n${karasu.stdout()}`);
    }
  }
});

after(async () => {
  const code = await karasu?.stop();
  assert.equal(code, 0, `karasu serve exits 0 on SIGTERM; stderr: ${karasu?.stderr()}`);
  await tap?.close();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

test('256 MiB through `karasu serve` with a slow reader: sha256 intact, RSS growth < 64 MiB', async () => {
  // Warm up: sockets, buffers and JIT are in place before the baseline is taken.
  assert.equal((await request(`${url}/big/small.txt`)).body.toString(), 'small');
  const warm = await request(`${url}/big/big.bin`, { headers: { range: `bytes=0-${16 * MiB - 1}` } });
  assert.equal(warm.status, 206);
  assert.equal(warm.body.length, 16 * MiB);
  await new Promise((r) => setTimeout(r, 200));
  const baseline = rssBytes(karasu.pid);

  let peak = baseline;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(karasu.pid));
    } catch {
      // the process is gone: the download fails on its own
    }
  }, 10);
  const t0 = Date.now();
  try {
    const result = await new Promise<{ status: number; length: string | undefined; received: number; sha: string }>((resolve, reject) => {
      const req = httpRequest(`${url}/big/big.bin`, { agent: false }, (res) => {
        const hash = createHash('sha256');
        let received = 0;
        let nextPause = 4 * MiB;
        res.on('data', (c: Buffer) => {
          hash.update(c);
          received += c.length;
          // Slow phase: for the first 48 MiB, stop reading for 150 ms after every 4 MiB, so Karasu's
          // reads from S3 (fast, local) must wait for the client.
          if (received >= nextPause && received <= 48 * MiB) {
            nextPause += 4 * MiB;
            res.pause();
            setTimeout(() => res.resume(), 150);
          }
        });
        res.on('aborted', () => reject(new Error(`aborted after ${received} bytes`)));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode!, length: res.headers['content-length'], received, sha: hash.digest('hex') }));
      });
      req.on('error', reject);
      req.setTimeout(60_000, () => req.destroy(new Error('download timed out')));
      req.end();
    });
    assert.equal(result.status, 200);
    assert.equal(result.length, String(SIZE));
    assert.equal(result.received, SIZE);
    assert.equal(result.sha, expectedSha);
  } finally {
    clearInterval(sampler);
  }
  const growth = peak - baseline;
  const seconds = (Date.now() - t0) / 1000;
  assert.ok(seconds > 1.5, 'the slow phase really held the download back');
  assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB)`);
});

test('a client that disconnects mid-download makes Karasu close its upstream connection', async () => {
  assert.equal(tap.opened, 0, 'nothing went through the tap yet');
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest(`${url}/tapped/big.bin`, { agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      let received = 0;
      res.on('data', (c: Buffer) => {
        received += c.length;
        if (received >= 2 * MiB) {
          req.destroy();
          resolve();
        }
      });
      res.on('end', () => reject(new Error('the whole body arrived before the client left')));
    });
    req.on('error', () => {});
    req.end();
  });
  assert.equal(tap.opened, 1);
  const deadline = Date.now() + 5000;
  while (tap.open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(tap.open, 0, 'Karasu closed its connection to S3 after the client left');
  assert.ok(tap.bytesDown < 64 * MiB, `only ${(tap.bytesDown / MiB).toFixed(1)} MiB of ${SIZE / MiB} MiB left S3`);

  // And Karasu carries on.
  const res = await request(`${url}/tapped/small.txt`);
  assert.equal(res.body.toString(), 'small');
});
