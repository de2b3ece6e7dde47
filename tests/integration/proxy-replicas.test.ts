// Replicas over real HTTP: two s3rver instances holding the same object, each behind a counting relay
// so the test sees which one served; failover on refusal, on 503 and on a stopped primary; the circuit
// breaker opening and showing in /ready and /metrics; every replica down.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { refusedPort, startFaultyServer, type FaultyServer } from '../helpers/faulty.js';
import { request } from '../helpers/http.js';
import { assertErrorJson, karasuYaml, replica, startKarasuYaml, type KarasuUnderTest } from '../helpers/karasu.js';
import { startRelay, type Relay } from '../helpers/relay.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'backend-replicated-r2';
const BODY = 'the same object on both replicas';
const FAST_RETRY = { max_attempts: 1, initial_backoff_ms: 10, max_backoff_ms: 20 };

let s3a: S3Handle;
let s3b: S3Handle;
let relayA: Relay;
let relayB: Relay;
let refused: number;
let f503: FaultyServer;
let fBreaker: FaultyServer;
let karasu: KarasuUnderTest;

before(async () => {
  [s3a, s3b] = await Promise.all([
    startS3({ buckets: { [BACKEND]: { 'obj.txt': BODY } } }),
    startS3({ buckets: { [BACKEND]: { 'obj.txt': BODY } } }),
  ]);
  relayA = await startRelay(s3a.endpoint);
  relayB = await startRelay(s3b.endpoint);
  refused = await refusedPort();
  f503 = await startFaultyServer('status', { status: 503 });
  fBreaker = await startFaultyServer('status', { status: 503 });
  const pair = (name: string, primary: string, more: Record<string, unknown> = {}) => ({
    name,
    prefix: `/${name}`,
    s3: {
      replicas: [replica('primary', primary, BACKEND, { priority: 1 }), replica('secondary', relayB.url, BACKEND, { priority: 2 })],
      retry: FAST_RETRY,
      ...more,
    },
  });
  karasu = await startKarasuYaml(
    karasuYaml({
      buckets: [
        pair('live', relayA.url),
        pair('refused', `http://127.0.0.1:${refused}`),
        pair('busy', f503.url),
        pair('breaker', fBreaker.url, { circuit_breaker: { failure_threshold: 2, timeout_seconds: 60 } }),
      ],
    }),
  );
});

after(async () => {
  await karasu?.stop();
  await relayA?.stop();
  await relayB?.stop();
  await f503?.stop();
  await fBreaker?.stop();
  await s3a?.stop();
  await s3b?.stop();
});

const get = (path: string, method = 'GET') => request(karasu.url + path, { method, timeoutMs: 10_000 });

async function ready(): Promise<{ status: number; json: { status: string; backends: Record<string, { status: string; replicas: Record<string, string> }> } }> {
  const res = await get('/ready');
  return { status: res.status, json: JSON.parse(res.body.toString()) };
}

describe('failover', () => {
  test('the healthy primary serves; the secondary is not asked', async () => {
    relayA.reset();
    relayB.reset();
    const res = await get('/live/obj.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), BODY);
    assert.equal(relayA.stats().requests, 1);
    assert.equal(relayB.stats().requests, 0);
  });

  test('primary refuses connections → served from the secondary (GET and HEAD)', async () => {
    relayB.reset();
    const res = await get('/refused/obj.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), BODY);
    const head = await get('/refused/obj.txt', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(BODY.length));
    assert.equal(relayB.stats().requests, 2);
  });

  test('primary answers 503 → served from the secondary', async () => {
    relayB.reset();
    const before = f503.requests;
    const res = await get('/busy/obj.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), BODY);
    assert.equal(f503.requests - before, 1);
    assert.equal(relayB.stats().requests, 1);
  });

  test('primary s3rver stopped → served from the secondary; back to the primary once it returns', async () => {
    await s3a.stop({ keepData: true });
    try {
      relayB.reset();
      const res = await get('/live/obj.txt');
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), BODY);
      assert.equal(relayB.stats().requests, 1);
    } finally {
      await s3a.restart();
    }
    relayA.reset();
    relayB.reset();
    const back = await get('/live/obj.txt');
    assert.equal(back.status, 200);
    assert.equal(relayA.stats().requests, 1);
    assert.equal(relayB.stats().requests, 0);
  });
});

describe('circuit breaker', () => {
  test('opens after failure_threshold; the open replica is skipped and /ready shows it unhealthy', async () => {
    const initial = await ready();
    assert.equal(initial.json.backends.breaker.replicas.primary, 'healthy');

    for (let i = 0; i < 2; i++) {
      const res = await get('/breaker/obj.txt');
      assert.equal(res.status, 200, 'failover hides the failing primary');
    }
    assert.equal(fBreaker.requests, 2);

    const after = await ready();
    assert.equal(after.status, 200, 'one replica of a bucket down: the instance can still serve');
    assert.equal(after.json.status, 'ready');
    assert.equal(after.json.backends.breaker.status, 'degraded');
    assert.equal(after.json.backends.breaker.replicas.primary, 'unhealthy');
    assert.equal(after.json.backends.breaker.replicas.secondary, 'healthy');
    assert.equal(after.json.backends.live.status, 'ready');

    for (let i = 0; i < 3; i++) assert.equal((await get('/breaker/obj.txt')).status, 200);
    assert.equal(fBreaker.requests, 2, 'an open breaker sends nothing to its replica');

    const metrics = (await get('/metrics')).body.toString();
    assert.match(metrics, /karasu_circuit_breaker_state\{bucket="breaker",replica="primary"\} 1/);
    assert.match(metrics, /karasu_upstream_failovers_total\{bucket="breaker",from="primary",to="secondary"\} [1-9]/);
  });
});

describe('every replica down', () => {
  let down: KarasuUnderTest;
  let p1: number;
  let p2: number;

  before(async () => {
    p1 = await refusedPort();
    p2 = await refusedPort();
    down = await startKarasuYaml(
      karasuYaml({
        buckets: [
          {
            name: 'down',
            prefix: '/down',
            s3: {
              replicas: [replica('a', `http://127.0.0.1:${p1}`, BACKEND), replica('b', `http://127.0.0.1:${p2}`, BACKEND)],
              retry: FAST_RETRY,
              circuit_breaker: { failure_threshold: 2, timeout_seconds: 30 },
            },
          },
        ],
      }),
    );
  });
  after(async () => {
    await down?.stop();
  });

  test('→ 502 while trying, then 503 with Retry-After once every breaker is open', async () => {
    for (let i = 0; i < 2; i++) assertErrorJson(await request(`${down.url}/down/obj.txt`), 502, undefined, [BACKEND, '127.0.0.1']);
    const res = await request(`${down.url}/down/obj.txt`);
    assertErrorJson(res, 503, undefined, [BACKEND, '127.0.0.1']);
    const retryAfter = Number(res.headers['retry-after']);
    assert.ok(retryAfter >= 1 && retryAfter <= 30, `Retry-After ${res.headers['retry-after']}`);

    const r = await request(`${down.url}/ready`);
    const json = JSON.parse(r.body.toString());
    assert.equal(json.backends.down.status, 'unavailable');
    assert.deepEqual(json.backends.down.replicas, { a: 'unhealthy', b: 'unhealthy' });
  });
});
