// Errors over real HTTP: S3 errors translated to Karasu's JSON, upstream failures (refused, stalled,
// 5xx, cut mid-body) and what the client sees, retries counted at the failing server.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import pino from 'pino';
import { refusedPort, startFaultyServer, type FaultyServer } from '../helpers/faulty.js';
import { request } from '../helpers/http.js';
import { assertErrorJson, karasuYaml, replica, startKarasuYaml, type BucketSpec, type KarasuUnderTest } from '../helpers/karasu.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'backend-secret-bkt-e4';
const FAST_RETRY = { max_attempts: 3, initial_backoff_ms: 10, max_backoff_ms: 20 };

let s3: S3Handle;
let karasu: KarasuUnderTest;
let refused: number;
const faulty: Record<string, FaultyServer> = {};
const logLines: Array<Record<string, unknown>> = [];
/** Several times what the sockets between s3rver, Karasu and the client hold, so a paused client holds S3 up. */
const LARGE = randomBytes(8 << 20);

before(async () => {
  s3 = await startS3({ buckets: { [BACKEND]: { 'here.txt': 'here', 'large.bin': LARGE } } });
  refused = await refusedPort();
  faulty.stallHeaders = await startFaultyServer('stall-headers');
  faulty.stallHeaders2 = await startFaultyServer('stall-headers');
  faulty.s503 = await startFaultyServer('status', { status: 503, headers: { 'retry-after': '7' } });
  faulty.s500 = await startFaultyServer('status', { status: 500 });
  faulty.stallBody = await startFaultyServer('stall-body', { contentLength: 1 << 20, sendBytes: 4096 });
  faulty.reset = await startFaultyServer('reset-mid-body', { contentLength: 1 << 20, sendBytes: 4096 });
  faulty.noRange = await startFaultyServer('ignore-range', { body: 'abcdefghij' });

  const b = (name: string, endpoint: string, s3More: Record<string, unknown> = {}): BucketSpec => ({
    name,
    prefix: `/${name}`,
    endpoint,
    bucket: BACKEND,
    s3: { retry: FAST_RETRY, ...s3More },
  });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  karasu = await startKarasuYaml(
    karasuYaml({
      server: { request_timeout: 1 },
      buckets: [
        b('ok', s3.endpoint),
        {
          name: 'badkey',
          prefix: '/badkey',
          s3: { replicas: [replica('only', s3.endpoint, BACKEND, { access_key: 'WRONGKEY', secret_key: 'whatever' })], retry: FAST_RETRY },
        },
        b('refused', `http://127.0.0.1:${refused}`, { retry: { ...FAST_RETRY, max_attempts: 2 } }),
        // request_timeout (1 s) bounds the wait; one attempt.
        b('stall', faulty.stallHeaders.url, { retry: { ...FAST_RETRY, max_attempts: 1 } }),
        {
          name: 'stallreplica',
          prefix: '/stallreplica',
          s3: { replicas: [replica('r1', faulty.stallHeaders2.url, BACKEND, { timeout: 0.3 })], retry: { ...FAST_RETRY, max_attempts: 2 } },
        },
        b('s503', faulty.s503.url),
        b('s500', faulty.s500.url, { retry: { ...FAST_RETRY, max_attempts: 2 } }),
        // s3.timeout is also the idle timeout once the body streams.
        b('stallbody', faulty.stallBody.url, { timeout: 0.5 }),
        // The same idle timeout in front of a healthy S3, for a client slower than it.
        b('slowclient', s3.endpoint, { timeout: 0.5 }),
        b('reset', faulty.reset.url),
        b('norange', faulty.noRange.url),
      ],
    }),
    {},
    { logger: pino({ level: 'info' }, sink) },
  );
});

after(async () => {
  await karasu?.stop();
  for (const f of Object.values(faulty)) await f.stop();
  await s3?.stop();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
  request(karasu.url + path, { method, headers, timeoutMs: 10_000 });

const NO_LEAK = () => [BACKEND, '127.0.0.1', 'ECONNREFUSED', 'faulty', 'FAULTY', 'SlowDown'];

describe('S3 errors', () => {
  test('S3 404 → 404 NoSuchKey JSON, nothing of S3 in it', async () => {
    const res = await get('/ok/missing.txt');
    assertErrorJson(res, 404, 'NoSuchKey', NO_LEAK());
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  test('S3 403 (unknown access key) → 403 with S3’s code, no XML; not a breaker failure', async () => {
    for (let i = 0; i < 7; i++) {
      const res = await get('/badkey/here.txt');
      const json = assertErrorJson(res, 403, undefined, NO_LEAK());
      assert.match(json.error, /^(AccessDenied|InvalidAccessKeyId)$/);
    }
    const ready = JSON.parse((await get('/ready')).body.toString());
    assert.equal(ready.backends.badkey.replicas.only, 'healthy', '4xx answers do not open the breaker');
  });

  test('HEAD errors have the status and no body', async () => {
    const res = await get('/ok/missing.txt', {}, 'HEAD');
    assert.equal(res.status, 404);
    assert.equal(res.body.length, 0);
    assert.ok(res.headers['x-request-id']);
  });
});

describe('upstream failures', () => {
  test('connection refused → 502', async () => {
    const res = await get('/refused/here.txt');
    assertErrorJson(res, 502, undefined, NO_LEAK());
  });

  test('upstream never sends headers → 504 once request_timeout passes', async () => {
    const t0 = Date.now();
    const res = await get('/stall/here.txt');
    const ms = Date.now() - t0;
    assertErrorJson(res, 504, undefined, NO_LEAK());
    assert.ok(ms >= 900 && ms < 4000, `answered after ${ms} ms (request_timeout 1 s)`);
    assert.equal(faulty.stallHeaders.requests, 1);
  });

  test('replica timeout shorter than request_timeout → 504 after max_attempts tries', async () => {
    const t0 = Date.now();
    const res = await get('/stallreplica/here.txt');
    const ms = Date.now() - t0;
    assertErrorJson(res, 504, undefined, NO_LEAK());
    assert.ok(ms < 2500, `answered after ${ms} ms (2 × 0.3 s)`);
    assert.equal(faulty.stallHeaders2.requests, 2);
  });

  test('upstream 503 → 502 after retries; the faulty server saw exactly max_attempts requests', async () => {
    const before = faulty.s503.requests;
    const res = await get('/s503/here.txt');
    assertErrorJson(res, 502, undefined, NO_LEAK());
    assert.equal(faulty.s503.requests - before, 3);
  });

  test('upstream 500 → 502 after max_attempts (2)', async () => {
    const res = await get('/s500/here.txt');
    assertErrorJson(res, 502, undefined, NO_LEAK());
    assert.equal(faulty.s500.requests, 2);
  });

  test('a 5xx is logged with the request id and the upstream status', async () => {
    const res = await get('/s500/here.txt', { 'x-request-id': 'log-me-500', 'x-forwarded-for': '203.0.113.9' });
    assert.equal(res.status, 502);
    const deadline = Date.now() + 2000;
    let line: Record<string, unknown> | undefined;
    while (!line && Date.now() < deadline) {
      line = logLines.find((l) => l.request_id === 'log-me-500');
      if (!line) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(line, 'a log line for the request');
    assert.equal(line.status, 502);
    assert.equal(line.bucket, 's500');
    assert.equal(line.level, 40);
    // The peer is not in server.trusted_proxies (none configured): its X-Forwarded-For is not believed.
    assert.match(String(line.client_ip), /^(?:::ffff:)?127\.0\.0\.1$/);
  });
});

/** Reads a response to the end or until the connection breaks; reports what the client saw. */
function download(url: string, timeoutMs = 10_000): Promise<{ status: number; declared: number; received: number; outcome: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let received = 0;
      const result = (outcome: string) =>
        resolve({ status: res.statusCode!, declared: Number(res.headers['content-length']), received, outcome });
      res.on('data', (c: Buffer) => (received += c.length));
      res.on('end', () => result(res.complete ? 'complete' : 'incomplete'));
      res.on('aborted', () => result('aborted'));
      res.on('error', () => result('error'));
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error('client timed out: Karasu kept the connection open')));
    req.end();
  });
}

describe('a backend that ignores Range', () => {
  test('its 200 is cut to the range asked for: 206, the right bytes, and only those counted as sent', async () => {
    const sentBefore = await bytesSentMetric('norange');
    const res = await get('/norange/here.txt', { range: 'bytes=2-5' });
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-range'], 'bytes 2-5/10');
    assert.equal(res.headers['content-length'], '4');
    assert.equal(res.body.toString(), 'cdef');
    assert.equal((await bytesSentMetric('norange')) - sentBefore, 4);

    const suffix = await get('/norange/here.txt', { range: 'bytes=-3' });
    assert.equal(suffix.status, 206);
    assert.equal(suffix.body.toString(), 'hij');
    assert.equal((await bytesSentMetric('norange')) - sentBefore, 7);
  });
});

/** karasu_http_response_bytes_total for one bucket (0 before its first response). */
async function bytesSentMetric(bucket: string): Promise<number> {
  const text = (await get('/metrics')).body.toString();
  const line = text.split('\n').find((l) => l.startsWith(`karasu_http_response_bytes_total{bucket="${bucket}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('failures mid-body', () => {
  test('upstream stalls mid-body → the client connection is cut (never a clean short 200)', async () => {
    const t0 = Date.now();
    const seen = await download(`${karasu.url}/stallbody/here.txt`);
    const ms = Date.now() - t0;
    assert.equal(seen.status, 200);
    assert.equal(seen.declared, 1 << 20);
    assert.ok(seen.received < seen.declared);
    assert.notEqual(seen.outcome, 'complete');
    assert.ok(ms < 5000, `cut after ${ms} ms (idle timeout 0.5 s)`);
    assert.equal(faulty.stallBody.requests, 1, 'no retry once bytes reached the client');
  });

  test('a client that stops reading for longer than the idle timeout still gets the whole body', async () => {
    // S3 is idle only because Karasu stopped reading (backpressure): that is not a stalled backend.
    const got = await new Promise<{ status: number; bytes: number; md5: string; complete: boolean }>((resolve, reject) => {
      const req = httpRequest(`${karasu.url}/slowclient/large.bin`, { agent: false }, (res) => {
        const md5 = createHash('md5');
        let bytes = 0;
        let paused = false;
        res.on('data', (chunk: Buffer) => {
          md5.update(chunk);
          bytes += chunk.length;
          if (!paused && bytes >= 256 * 1024) {
            paused = true;
            res.pause();
            setTimeout(() => res.resume(), 1500);
          }
        });
        res.on('end', () => resolve({ status: res.statusCode!, bytes, md5: md5.digest('hex'), complete: res.complete }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(20_000, () => req.destroy(new Error('client timed out')));
      req.end();
    });
    assert.equal(got.status, 200);
    assert.equal(got.bytes, LARGE.length);
    assert.equal(got.md5, createHash('md5').update(LARGE).digest('hex'));
    assert.ok(got.complete);
  });

  test('upstream resets mid-body → the client sees an incomplete body; no retry', async () => {
    const seen = await download(`${karasu.url}/reset/here.txt`);
    assert.equal(seen.status, 200);
    assert.ok(seen.received < seen.declared, `received ${seen.received} of ${seen.declared}`);
    assert.notEqual(seen.outcome, 'complete');
    assert.equal(faulty.reset.requests, 1);
    await assert.rejects(request(`${karasu.url}/reset/here.txt`), /aborted|ended before|socket hang up|ECONNRESET/);
  });

  test('Karasu still serves after all of the above', async () => {
    const res = await get('/ok/here.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'here');
  });
});
