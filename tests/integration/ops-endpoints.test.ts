// /health, /ready and /metrics over real HTTP, on the main listener and on a separate metrics port.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from '../helpers/http.js';
import { assertErrorJson, karasuYaml, METRICS_PORT_VAR, REPO_ROOT, startKarasuYaml, type KarasuUnderTest } from '../helpers/karasu.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'backend-ops-m1';
const VERSION = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version as string;

let s3: S3Handle;
let karasu: KarasuUnderTest;

before(async () => {
  s3 = await startS3({ buckets: { [BACKEND]: { 'a.txt': 'a' } } });
  karasu = await startKarasuYaml(
    karasuYaml({
      buckets: [
        { name: 'media', prefix: '/media', endpoint: s3.endpoint, bucket: BACKEND },
        { name: 'other', prefix: '/other', endpoint: s3.endpoint, bucket: BACKEND },
      ],
    }),
  );
});

after(async () => {
  await karasu?.stop();
  await s3?.stop();
});

/** The value of one sample line of the Prometheus text, 0 when absent. */
function sample(text: string, name: string, labels: string): number {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) && line.includes(labels)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

describe('main listener', () => {
  test('/health: 200 JSON with version and uptime', async () => {
    const res = await request(`${karasu.url}/health`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const json = JSON.parse(res.body.toString());
    assert.equal(json.version, VERSION);
    assert.equal(typeof json.uptime_seconds, 'number');
    assert.ok(json.uptime_seconds >= 0 && json.uptime_seconds < 600);
    assert.ok(res.headers['x-request-id']);
  });

  test('/ready: 200 JSON naming every bucket and replica', async () => {
    const res = await request(`${karasu.url}/ready`);
    assert.equal(res.status, 200);
    const json = JSON.parse(res.body.toString());
    assert.equal(json.status, 'ready');
    assert.deepEqual(Object.keys(json.backends).sort(), ['media', 'other']);
    assert.equal(json.backends.media.status, 'ready');
    assert.deepEqual(json.backends.media.replicas, { default: 'healthy' });
    assert.ok(res.headers['x-request-id']);
    assert.ok(!res.body.toString().includes(BACKEND), 'backend bucket names are not published');
  });

  test('/metrics: Prometheus text; karasu_http_requests_total counts requests by bucket and status', async () => {
    const read = async () => (await request(`${karasu.url}/metrics`)).body.toString();
    const before = await read();
    for (let i = 0; i < 3; i++) assert.equal((await request(`${karasu.url}/media/a.txt`)).status, 200);
    assert.equal((await request(`${karasu.url}/media/missing`)).status, 404);

    const res = await request(`${karasu.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    // Counted when the response ends: allow the server a moment after the client has the body.
    let text = res.body.toString();
    const deadline = Date.now() + 2000;
    const ok = '"media",method="GET",status="200"';
    while (sample(text, 'karasu_http_requests_total', ok) - sample(before, 'karasu_http_requests_total', ok) < 3 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      text = await read();
    }
    assert.match(text, /^# TYPE karasu_http_requests_total counter$/m);
    assert.equal(sample(text, 'karasu_http_requests_total', ok) - sample(before, 'karasu_http_requests_total', ok), 3);
    const nf = '"media",method="GET",status="404"';
    assert.equal(sample(text, 'karasu_http_requests_total', nf) - sample(before, 'karasu_http_requests_total', nf), 1);
    assert.match(text, /^karasu_http_request_duration_seconds_bucket\{/m);
  });

  test('/metrics carries X-Request-Id like every other response', async () => {
    const res = await request(`${karasu.url}/metrics`);
    assert.ok(res.headers['x-request-id']);
  });
});

describe('metrics on a separate listener', () => {
  let withPort: KarasuUnderTest;
  let disabled: KarasuUnderTest;

  before(async () => {
    withPort = await startKarasuYaml(
      karasuYaml({
        buckets: [{ name: 'media', prefix: '/media', endpoint: s3.endpoint, bucket: BACKEND }],
        top: { metrics: { enabled: true, port: METRICS_PORT_VAR, address: '127.0.0.1' } },
      }),
    );
    disabled = await startKarasuYaml(
      karasuYaml({
        buckets: [{ name: 'media', prefix: '/media', endpoint: s3.endpoint, bucket: BACKEND }],
        top: { metrics: { enabled: false } },
      }),
    );
  });
  after(async () => {
    await withPort?.stop();
    await disabled?.stop();
  });

  test('metrics.port set: /metrics served there, 404 on the main port', async () => {
    assert.ok(withPort.metricsPort && withPort.metricsPort !== withPort.port);
    assert.equal((await request(`${withPort.url}/media/a.txt`)).status, 200);
    const res = await request(`http://127.0.0.1:${withPort.metricsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.body.toString(), /karasu_http_requests_total\{bucket="media",method="GET",status="200"\} \d+/);
    assertErrorJson(await request(`${withPort.url}/metrics`), 404);
    // The metrics listener serves metrics only.
    assert.equal((await request(`http://127.0.0.1:${withPort.metricsPort}/media/a.txt`)).status, 404);
  });

  test('metrics.enabled false: no /metrics anywhere', async () => {
    assertErrorJson(await request(`${disabled.url}/metrics`), 404);
    assert.equal(disabled.metricsPort, null);
    assert.equal((await request(`${disabled.url}/health`)).status, 200);
  });
});
