// `karasu check` as a real process, and the Yatagarasu example configs loading (and serving) unchanged.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';
import { request } from '../helpers/http.js';
import { METRICS_PORT_VAR, PORT_VAR, REPO_ROOT, runCli, spawnCli, startKarasuYaml, waitForHttp } from '../helpers/karasu.js';
import { freePort } from '../helpers/ports.js';
import { startS3, S3RVER_CREDENTIALS } from '../helpers/s3.js';

const SIMPLE = join(REPO_ROOT, 'config/examples/yatagarasu-simple.yaml');
const HA_REDIS = join(REPO_ROOT, 'config/examples/yatagarasu-ha-redis.yaml');
const AWS_ENV = { AWS_ACCESS_KEY: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_KEY: S3RVER_CREDENTIALS.secretAccessKey };

const GOOD = `server:
  address: 127.0.0.1
  port: 8080
buckets:
  - name: media
    path_prefix: /media
    s3:
      bucket: b
      region: us-east-1
      endpoint: \${KARASU_TEST_ENDPOINT:-http://127.0.0.1:9000}
`;
// Line 9 col 7: a misspelt key. Line 10 col 17: a variable that is not set.
const BAD = `server:
  address: 127.0.0.1
  port: 8080
buckets:
  - name: media
    path_prefix: /media
    s3:
      bucket: b
      regoin: us-east-1
      endpoint: \${KARASU_TEST_NOT_SET}
`;
const BROKEN_YAML = `server:
  address: 127.0.0.1
  port: [8080
buckets: []
`;

let dir: string;
type Run = Awaited<ReturnType<typeof runCli>>;
const runs: Record<string, Run> = {};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'karasu-cli-'));
  await writeFile(join(dir, 'good.yaml'), GOOD);
  await writeFile(join(dir, 'bad.yaml'), BAD);
  await writeFile(join(dir, 'broken.yaml'), BROKEN_YAML);
  // Each run starts a Node process with tsx: run them side by side.
  assert.equal(process.env.KARASU_TEST_NOT_SET, undefined);
  const entries = await Promise.all(
    Object.entries({
      good: ['check', '-c', join(dir, 'good.yaml')],
      bad: ['check', '-c', join(dir, 'bad.yaml')],
      broken: ['check', '--config', join(dir, 'broken.yaml')],
      missing: ['check', '-c', join(dir, 'nope.yaml')],
      haRedis: ['check', '-c', HA_REDIS],
    }).map(async ([name, args]) => [name, await runCli(args, AWS_ENV)] as const),
  );
  for (const [name, run] of entries) runs[name] = run;
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('karasu check', () => {
  test('a valid file → exit 0', () => {
    assert.equal(runs.good.code, 0, runs.good.stderr);
    assert.match(runs.good.stdout, /good\.yaml: OK/);
  });

  test('errors → exit 1, each reported as file:line:column with the key path', () => {
    const { code, stderr } = runs.bad;
    assert.equal(code, 1);
    const file = join(dir, 'bad.yaml');
    assert.ok(stderr.includes(`${file}:9:7: buckets[0].s3.regoin`), stderr);
    assert.match(stderr, /did you mean `region`/);
    assert.ok(stderr.includes(`${file}:10:17:`), stderr);
    assert.match(stderr, /KARASU_TEST_NOT_SET/);
  });

  test('YAML syntax errors → exit 1 with a position', () => {
    assert.equal(runs.broken.code, 1);
    assert.ok(runs.broken.stderr.includes(`${join(dir, 'broken.yaml')}:`), runs.broken.stderr);
    assert.match(runs.broken.stderr, /broken\.yaml:\d+:\d+/);
  });

  test('a file that does not exist → exit 1', () => {
    assert.equal(runs.missing.code, 1);
    assert.match(runs.missing.stderr, /nope\.yaml/);
  });

  test('the Yatagarasu ha-redis example passes check', () => {
    assert.equal(runs.haRedis.code, 0, runs.haRedis.stderr);
  });
});

describe('Yatagarasu example configs', () => {
  test('ha-redis loads unchanged and means what it says', async () => {
    const { config } = await loadConfigFile(HA_REDIS, AWS_ENV);
    assert.equal(config.server.port, 8080);
    assert.equal(config.buckets.length, 1);
    const [bucket] = config.buckets;
    assert.equal(bucket.name, 'public-assets');
    assert.equal(bucket.path_prefix, '/public');
    assert.equal(bucket.s3.replicas.length, 1);
    assert.equal(bucket.s3.replicas[0].endpoint, 'http://minio1:9000');
    assert.equal(bucket.s3.replicas[0].access_key, S3RVER_CREDENTIALS.accessKeyId);
    assert.equal(config.cache.enabled, true);
    assert.deepEqual(config.cache.cache_layers, ['memory', 'redis']);
    assert.equal(config.cache.memory.max_cache_size_mb, 100);
    assert.equal(config.cache.memory.default_ttl_seconds, 300);
    assert.equal(config.cache.redis.redis_url, 'redis://redis:6379');
    assert.equal(config.cache.redis.redis_ttl_seconds, 3600);
    assert.equal(config.metrics.port, 9090);
    assert.equal(config.logging.format, 'json');
  });

  test('simple serves an object from its bucket (endpoint pointed at s3rver, keys from the environment)', async () => {
    const s3 = await startS3({ buckets: { 'public-assets': { 'logo.txt': 'public asset' } } });
    try {
      const original = await readFile(SIMPLE, 'utf8');
      // Only what ties the example to its docker-compose network changes: listen and metrics ports,
      // the MinIO host name. Credentials come through ${AWS_ACCESS_KEY}/${AWS_SECRET_KEY} as written.
      const adapted = original
        .replace('address: "0.0.0.0"', 'address: "127.0.0.1"')
        .replace('port: 8080', `port: ${PORT_VAR}`)
        .replace('port: 9090', `port: ${METRICS_PORT_VAR}`)
        .replace('http://minio:9000', s3.endpoint);
      assert.notEqual(adapted, original);
      assert.ok(adapted.includes('${AWS_ACCESS_KEY}') && adapted.includes(s3.endpoint) && adapted.includes(PORT_VAR) && adapted.includes(METRICS_PORT_VAR));
      const karasu = await startKarasuYaml(adapted, AWS_ENV);
      try {
        const res = await request(`${karasu.url}/public/logo.txt`);
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), 'public asset');
        assert.equal((await request(`${karasu.url}/private/logo.txt`)).status, 404);
        assert.ok(karasu.metricsPort);
        const metrics = await request(`http://127.0.0.1:${karasu.metricsPort}/metrics`);
        assert.match(metrics.body.toString(), /karasu_http_requests_total\{bucket="public-assets"/);
      } finally {
        await karasu.stop();
      }
    } finally {
      await s3.stop();
    }
  });
});

describe('karasu serve start-up refusals', () => {
  test('a second instance on a cache_dir in use exits 1 with one clear line; the first keeps serving', async () => {
    const cacheDir = join(dir, 'shared-cache');
    const yamlFor = (port: number) => `server: { address: 127.0.0.1, port: ${port} }
buckets:
  - name: media
    path_prefix: /media
    s3: { bucket: b, region: us-east-1, endpoint: "http://127.0.0.1:9" }
cache:
  enabled: true
  cache_layers: [disk]
  disk: { enabled: true, cache_dir: ${JSON.stringify(cacheDir)}, max_disk_cache_size_mb: 8 }
`;
    const [firstPort, secondPort] = [await freePort(), await freePort()];
    await writeFile(join(dir, 'first.yaml'), yamlFor(firstPort));
    await writeFile(join(dir, 'second.yaml'), yamlFor(secondPort));
    const first = spawnCli(['serve', '-c', join(dir, 'first.yaml')], AWS_ENV);
    try {
      await waitForHttp(`http://127.0.0.1:${firstPort}/health`, 20_000, () => first.child.exitCode === null);
      const second = await runCli(['serve', '-c', join(dir, 'second.yaml')], AWS_ENV);
      assert.equal(second.code, 1);
      const said = second.stdout.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; code?: string });
      const fatal = said.find((l) => l.level === 60);
      assert.ok(fatal, second.stdout);
      assert.equal(fatal.code, 'KARASU_CACHE_DIR_IN_USE');
      assert.match(fatal.msg, new RegExp(`cache_dir ${cacheDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by Karasu pid ${first.pid}`));
      assert.doesNotMatch(second.stderr, /\n\s+at /, 'no stack trace');
      assert.equal((await request(`http://127.0.0.1:${firstPort}/health`)).status, 200);
    } finally {
      assert.equal(await first.stop(), 0);
    }
    // The first released the directory when it stopped.
    const again = spawnCli(['serve', '-c', join(dir, 'second.yaml')], AWS_ENV);
    try {
      await waitForHttp(`http://127.0.0.1:${secondPort}/health`, 20_000, () => again.child.exitCode === null);
    } finally {
      assert.equal(await again.stop(), 0);
    }
  });
});
