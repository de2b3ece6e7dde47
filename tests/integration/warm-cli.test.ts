// `karasu warm` as a real process: in-process against the disk tier a later Karasu serves from, and
// through a running instance's admin API (--url); plain progress lines when stdout is not a terminal.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { get } from '../helpers/cache-kit.js';
import { karasuYaml, runCli } from '../helpers/karasu.js';
import { admin, startKarasuFile, tempDir, type FileKarasu } from '../helpers/ops.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'warm-src';
const KEYS = Array.from({ length: 8 }, (_, i) => `set/${i}.txt`);
const TOKEN = 'warm-cli-admin-token-0123456789';

let s3: S3Handle;
let tmp: Awaited<ReturnType<typeof tempDir>>;
const started: FileKarasu[] = [];

before(async () => {
  const objects: Record<string, string> = { 'other.txt': 'other' };
  for (const k of KEYS) objects[k] = `object ${k}`;
  s3 = await startS3({ buckets: { [BACKEND]: objects } });
  tmp = await tempDir('karasu-warm-');
});

after(async () => {
  for (const k of started) await k.stop();
  await s3?.stop();
  await tmp?.remove();
});

function yaml(cacheDir: string, top: Record<string, unknown> = {}): string {
  return karasuYaml({
    buckets: [{ name: 'media', prefix: '/media', endpoint: s3.endpoint, bucket: BACKEND }],
    top: {
      cache: {
        enabled: true,
        cache_layers: ['memory', 'disk'],
        disk: { enabled: true, cache_dir: cacheDir, max_disk_cache_size_mb: 16 },
        warming: { concurrency: 2, rate_limit: 1000 },
      },
      ...top,
    },
  });
}

test('warm -c FILE: fills the disk tier a Karasu started afterwards serves from', async () => {
  const dir = join(tmp.dir, 'local');
  await mkdir(dir);
  const cacheDir = join(dir, 'cache');
  const file = join(dir, 'warm.yaml');
  await writeFile(file, yaml(cacheDir).replace('${KARASU_TEST_PORT}', '8080'));
  const run = await runCli(['warm', '-c', file, 'media', 'set/']);
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.ok(lines.every((l) => l.startsWith('prewarm: ')), run.stdout);
  assert.equal(lines[lines.length - 1], 'prewarm: 8 of 8 objects done (warmed 8, skipped 0, failed 0, 128 B)');

  const k = await startKarasuFile(dir, yaml(cacheDir));
  started.push(k);
  for (const key of KEYS) {
    const res = await get(k, `/media/${key}`);
    assert.equal(res.xcache, 'HIT', key);
    assert.equal(res.detail, 'disk');
  }
  assert.equal((await get(k, '/media/other.txt')).xcache, 'MISS', 'only the prefix was warmed');
});

test('warm --url: the running instance warms itself; errors and usage', async () => {
  const dir = join(tmp.dir, 'remote');
  await mkdir(dir);
  const k = await startKarasuFile(dir, yaml(join(dir, 'cache'), { admin: { token: TOKEN } }));
  started.push(k);
  const [ok, denied, unknown, usage] = await Promise.all([
    runCli(['warm', '--url', k.url, 'media', 'set', '--max-files', '5'], { KARASU_ADMIN_TOKEN: TOKEN }),
    runCli(['warm', '--url', k.url, '--token', 'wrong-token-wrong-token', 'media']),
    runCli(['warm', '--url', k.url, '--token', TOKEN, 'nope']),
    runCli(['warm', 'media']),
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout.trim().split('\n').pop()!, /^prewarm: 5 of 5 objects done \(warmed 5, skipped 0, failed 0, /);
  const stats = await admin(k.url, 'GET', '/admin/cache/stats', { token: TOKEN });
  assert.equal((stats.json.data as { tiers: { memory: { entries: number } } }).tiers.memory.entries, 5);
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /answered 401/);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /answered 404: No bucket named 'nope'/);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^usage: karasu warm/);
});
