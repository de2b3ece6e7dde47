// Graceful shutdown of `karasu serve` (a real process): SIGTERM while a 256 MiB download is in flight
// (the client reads slowly) → new connections are refused at once, /ready answers 503 on the open
// connection, the download completes byte-exact, the audit line is flushed, Redis is closed and the
// process exits 0 by itself; a second signal exits at once.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { until } from '../helpers/cache-kit.js';
import { spawnCli, waitForHttp, type KarasuProcess } from '../helpers/karasu.js';
import { startOrigin, tempDir, type Origin } from '../helpers/ops.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisHandle } from '../helpers/redis.js';

const MiB = 1024 * 1024;
const SIZE = 256 * MiB;
const PATTERN = randomBytes(MiB);

let origin: Origin;
let redis: RedisHandle | null;
let tmp: Awaited<ReturnType<typeof tempDir>>;
const children: KarasuProcess[] = [];

before(async () => {
  origin = await startOrigin({ pattern: PATTERN, size: SIZE, chunk: 256 * 1024 });
  redis = await startRedis();
  tmp = await tempDir('karasu-shutdown-');
});

after(async () => {
  for (const c of children) await c.stop();
  await origin?.stop();
  await redis?.stop();
  await tmp?.remove();
});

function expectedDigest(): string {
  const h = createHash('sha256');
  for (let i = 0; i < SIZE / MiB; i++) h.update(PATTERN);
  return h.digest('hex');
}

async function serve(name: string): Promise<{ child: KarasuProcess; port: number; audit: string }> {
  const file = join(tmp.dir, `${name}.yaml`);
  const audit = join(tmp.dir, `${name}-audit.jsonl`);
  const layers = redis ? '[memory, redis]' : '[memory]';
  await writeFile(
    file,
    `server:
  address: 127.0.0.1
  port: \${KARASU_TEST_PORT}
  shutdown_timeout_seconds: 30
buckets:
  - name: big
    path_prefix: /big
    s3: {bucket: b, endpoint: ${origin.endpoint}, access_key: AK, secret_key: SK}
    cache: {enabled: false}
cache:
  enabled: true
  cache_layers: ${layers}
  redis: {enabled: ${redis ? 'true' : 'false'}${redis ? `, redis_url: "${redis.url}"` : ''}}
audit_log:
  enabled: true
  file: {path: ${JSON.stringify(audit)}}
logging: {level: info, format: json}
`,
  );
  const port = await freePort();
  const child = spawnCli(['serve', '-c', file], { KARASU_TEST_PORT: String(port) });
  children.push(child);
  await waitForHttp(`http://127.0.0.1:${port}/health`, 20_000, () => child.child.exitCode === null);
  return { child, port, audit };
}

/** Resolves with the error code of a fresh connection attempt ('connected' when it was accepted). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/**
 * GET the object on a raw connection, read by hand: the body is hashed as it arrives, reading can be
 * paused (the slow client), and a second request can be pipelined on the busy connection later.
 */
function pipelined(port: number) {
  const socket: Socket = connect(port, '127.0.0.1');
  socket.write('GET /big/object.bin HTTP/1.1\r\nHost: karasu\r\n\r\n');
  const hash = createHash('sha256');
  let head: string | null = null;
  let length = -1;
  let received = 0;
  let rest = Buffer.alloc(0);
  let second = Buffer.alloc(0);
  let closed = false;
  socket.on('data', (chunk: Buffer) => {
    if (head === null) {
      rest = Buffer.concat([rest, chunk]);
      const end = rest.indexOf('\r\n\r\n');
      if (end === -1) return;
      head = rest.subarray(0, end).toString('latin1');
      length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
      chunk = rest.subarray(end + 4);
    }
    const need = length - received;
    const body = chunk.length <= need ? chunk : chunk.subarray(0, need);
    hash.update(body);
    received += body.length;
    if (chunk.length > body.length) second = Buffer.concat([second, chunk.subarray(body.length)]);
  });
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  return {
    socket,
    get head() {
      return head;
    },
    get received() {
      return received;
    },
    get closed() {
      return closed;
    },
    digest: () => hash.digest('hex'),
    sendReady: () => socket.write('GET /ready HTTP/1.1\r\nHost: karasu\r\n\r\n'),
    second: () => second.toString('latin1'),
  };
}

test('SIGTERM during a 256 MiB download: refused at once, /ready 503, the download completes byte-exact, audit flushed, exit 0', async () => {
  const { child, port, audit } = await serve('graceful');
  const client = pipelined(port);
  await until('the download started', () => client.received >= 4 * MiB, 10_000);
  client.socket.pause(); // the slow client: Karasu is held by backpressure
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(client.received < SIZE / 4, `only ${client.received} bytes read before SIGTERM`);

  const exited = new Promise<number | null>((resolve) => child.child.once('exit', (code) => resolve(code)));
  child.child.kill('SIGTERM');
  await until('new connections refused', async () => (await tryConnect(port)) === 'ECONNREFUSED', 5000);
  assert.equal(child.child.exitCode, null, 'still draining');
  // A readiness check on the connection that is still open (pipelined behind the download).
  client.sendReady();

  // Read the rest, slowly at first then at full speed.
  for (let i = 0; i < 5; i++) {
    client.socket.resume();
    await new Promise((r) => setTimeout(r, 20));
    client.socket.pause();
    await new Promise((r) => setTimeout(r, 50));
  }
  client.socket.resume();
  await until('the whole body', () => client.received === SIZE, 60_000);
  assert.match(client.head!, /^HTTP\/1\.1 200 /);
  assert.equal(client.digest(), expectedDigest(), '256 MiB byte-exact');
  // The pipelined /ready, answered while draining: 503.
  await until('the /ready answer', () => /\r\n\r\n\{.*\}$/s.test(client.second()), 5000);
  assert.match(client.second(), /^HTTP\/1\.1 503 /);

  assert.equal(await exited, 0);
  const out = child.stdout();
  assert.match(out, /"msg":"draining: finishing in-flight requests"/);
  assert.match(out, /"msg":"audit log flushed"/);
  assert.match(out, /"msg":"stopped"/);
  assert.doesNotMatch(out, /open handles still hold the process/, 'every connection (Redis included) closed by itself');
  const lines = (await readFile(audit, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const big = lines.find((l) => l.path === '/big/object.bin');
  assert.ok(big, 'the download has its audit line');
  assert.equal(big.bytes_sent, SIZE);
  assert.equal(big.complete, true);
  assert.equal(big.status, 200);
});

test('a second SIGTERM exits at once', async () => {
  const { child, port } = await serve('impatient');
  const client = pipelined(port);
  await until('the download started', () => client.received >= MiB, 10_000);
  client.socket.pause();
  const exited = new Promise<number | null>((resolve) => child.child.once('exit', (code) => resolve(code)));
  child.child.kill('SIGTERM');
  await until('draining', () => /draining/.test(child.stdout()), 5000);
  const t0 = Date.now();
  child.child.kill('SIGTERM');
  assert.equal(await exited, 1);
  assert.ok(Date.now() - t0 < 2000, 'no drain wait');
  assert.ok(client.received < SIZE);
  client.socket.destroy();
});
