// Hot reload of `karasu serve` (a real process) by each trigger — POST /admin/reload, SIGHUP, and the
// config file watch — with valid and invalid files, while a load loop of concurrent GETs runs on
// keep-alive connections: zero failed requests, the connections survive, the new routes and admin
// tokens take effect at once, an invalid file keeps the running config (its error returned with
// file:line:column), a download in flight finishes on the snapshot it started with, and a change of
// the listen address is reported as needing a restart.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { body, until } from '../helpers/cache-kit.js';
import { request, sha256 } from '../helpers/http.js';
import { spawnCli, waitForHttp, type KarasuProcess } from '../helpers/karasu.js';
import { admin, metricValue, startOrigin, tempDir, type Origin } from '../helpers/ops.js';
import { freePort } from '../helpers/ports.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'reload-src';
const BIG = body(1024 * 1024, 7);

let s3: S3Handle;
/** 1 MiB in 64 KiB chunks, 120 ms apart: about 2 s, across several reloads. */
let slowOrigin: Origin;
let tmp: Awaited<ReturnType<typeof tempDir>>;
const children: KarasuProcess[] = [];

before(async () => {
  s3 = await startS3({ buckets: { [BACKEND]: { 'a.txt': 'alpha', 'big.bin': BIG } } });
  slowOrigin = await startOrigin({ pattern: BIG, size: BIG.length, chunk: 64 * 1024, delayMs: 120 });
  tmp = await tempDir('karasu-reload-');
});

after(async () => {
  for (const c of children) await c.stop();
  await slowOrigin?.stop();
  await s3?.stop();
  await tmp?.remove();
});

const tokenOf = (gen: number) => `admin-token-generation-${gen}-abcdef`;

/** Generation `gen`'s file: route /gen<gen>, admin token of that generation; `invalid` misspells a key. */
function configText(gen: number, opts: { invalid?: boolean; port?: string; slow?: boolean; audit?: string } = {}): string {
  const prefixKey = opts.invalid ? 'path_prefx' : 'path_prefix';
  return `server:
  address: 127.0.0.1
  port: ${opts.port ?? '${KARASU_TEST_PORT}'}
  shutdown_timeout_seconds: 5
buckets:
  - name: media
    path_prefix: /media
    s3: {bucket: ${BACKEND}, endpoint: ${s3.endpoint}, access_key: S3RVER, secret_key: S3RVER}
  - name: gen
    ${prefixKey}: /gen${gen}
    s3: {bucket: ${BACKEND}, endpoint: ${s3.endpoint}, access_key: S3RVER, secret_key: S3RVER}
${
  opts.slow
    ? `  - name: slow
    path_prefix: /slow
    s3: {bucket: ${BACKEND}, endpoint: ${slowOrigin.endpoint}, access_key: S3RVER, secret_key: S3RVER}
    cache: {enabled: false}
`
    : ''
}cache:
  enabled: true
  cache_layers: [memory]
admin:
  token: ${tokenOf(gen)}
logging: {level: warn, format: json}
${opts.audit ?? ''}`;
}

interface Loop {
  ok: number;
  failures: string[];
  sockets: Set<Socket>;
  stop(): Promise<void>;
}

/** `workers` loops of GET /media/a.txt on keep-alive connections until stopped. */
function loadLoop(url: string, workers = 6): Loop {
  const agent = new Agent({ keepAlive: true, maxSockets: workers });
  const loop: Loop = { ok: 0, failures: [], sockets: new Set(), stop: async () => {} };
  let running = true;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = httpRequest(`${url}/media/a.txt`, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode === 200 && Buffer.concat(chunks).toString() === 'alpha') loop.ok++;
          else loop.failures.push(`status ${res.statusCode}`);
          resolve();
        });
        res.on('error', (err) => {
          loop.failures.push(err.message);
          resolve();
        });
      });
      req.on('socket', (s: Socket) => loop.sockets.add(s));
      req.on('error', (err) => {
        loop.failures.push(err.message);
        resolve();
      });
      req.end();
    });
  const done = Promise.all(
    Array.from({ length: workers }, async () => {
      while (running) await one();
    }),
  );
  loop.stop = async () => {
    running = false;
    await done;
    agent.destroy();
  };
  return loop;
}

async function serve(name: string, text: string, watch: boolean): Promise<{ child: KarasuProcess; url: string; file: string; port: string }> {
  const file = join(tmp.dir, `${name}.yaml`);
  await writeFile(file, text);
  const port = String(await freePort());
  const child = spawnCli(['serve', '-c', file, ...(watch ? [] : ['--no-watch'])], { KARASU_TEST_PORT: port });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/health`, 20_000, () => child.child.exitCode === null);
  return { child, url, file, port };
}

async function generation(url: string): Promise<number> {
  return JSON.parse((await request(`${url}/ready`)).body.toString()).config_generation as number;
}

async function failures(url: string): Promise<number> {
  return metricValue((await request(`${url}/metrics`)).body.toString(), 'karasu_config_reloads_total', 'result="failure"');
}

/** The routes and admin token of generation `gen` are in effect (and `previous`'s are gone). */
async function assertGeneration(url: string, gen: number, previous: number | null): Promise<void> {
  assert.equal((await request(`${url}/gen${gen}/a.txt`)).status, 200, `route /gen${gen}`);
  if (previous !== null && previous !== gen) assert.equal((await request(`${url}/gen${previous}/a.txt`)).status, 404, `route /gen${previous} gone`);
  assert.equal((await admin(url, 'GET', '/admin/cache/stats', { token: tokenOf(gen) })).status, 200, `token of generation ${gen}`);
  if (previous !== null && previous !== gen) assert.equal((await admin(url, 'GET', '/admin/cache/stats', { token: tokenOf(previous) })).status, 401);
}

test('POST /admin/reload and SIGHUP, valid and invalid files, under load; in-flight downloads finish; listen address needs a restart', async () => {
  const k = await serve('a', configText(0, { slow: true }), false);
  const loop = loadLoop(k.url);
  const steps = 14;
  let valid = 0;
  try {
    // A download that outlives several reloads, the first of which removes its bucket.
    const slow = request(`${k.url}/slow/big.bin`, { timeoutMs: 60_000 });
    await until('slow download under way', () => slowOrigin.sent > 0);

    let failed = 0;
    for (let i = 1; i <= steps; i++) {
      const invalid = i % 5 === 0;
      const trigger = i % 2 === 0 ? 'admin' : 'signal';
      await writeFile(k.file, configText(i, { invalid }));
      const before = await generation(k.url);
      if (trigger === 'admin') {
        const res = await admin(k.url, 'POST', '/admin/reload', { token: tokenOf(valid) });
        if (invalid) {
          assert.equal(res.status, 400);
          assert.equal(res.json.status, 'error');
          const errors = res.json.errors as string[];
          assert.ok(errors.some((e) => /a\.yaml:10:5: buckets\[1\]\.path_prefx: unknown key `path_prefx`; did you mean `path_prefix`\?/.test(e)), errors.join('\n'));
        } else {
          assert.equal(res.status, 200, JSON.stringify(res.json));
          assert.equal(res.json.generation, before + 1);
          assert.deepEqual(res.json.needs_restart, []);
        }
      } else {
        k.child.child.kill('SIGHUP');
      }
      if (invalid) {
        failed++;
        await until(`reload ${i} (${trigger}) counted as failed`, async () => (await failures(k.url)) === failed);
        assert.equal(await generation(k.url), before, 'the running configuration stays');
        await assertGeneration(k.url, valid, null);
      } else {
        await until(`reload ${i} (${trigger}) applied`, async () => (await generation(k.url)) === before + 1);
        await assertGeneration(k.url, i, valid);
        valid = i;
      }
    }

    const big = await slow;
    assert.equal(big.status, 200);
    assert.equal(sha256(big.body), sha256(BIG), 'the download started before the reloads completes byte-exact');

    // A new listen address cannot be applied by a reload: reported, and the old port keeps serving.
    const otherPort = String(await freePort());
    await writeFile(k.file, configText(99, { port: otherPort }));
    const moved = await admin(k.url, 'POST', '/admin/reload', { token: tokenOf(valid) });
    assert.equal(moved.status, 200);
    assert.deepEqual(moved.json.needs_restart, ['server.address/server.port']);
    assert.equal((await request(`${k.url}/gen99/a.txt`)).status, 200);
  } finally {
    await loop.stop();
  }
  assert.deepEqual(loop.failures, []);
  assert.ok(loop.ok > 100, `load loop ran (${loop.ok} requests)`);
  assert.equal(loop.sockets.size, 6, 'keep-alive connections survive every reload');
  const after = await request(`${k.url}/media/a.txt`);
  assert.equal(after.headers['x-cache'], 'HIT', 'the cache survives reloads');
  const metrics = (await request(`${k.url}/metrics`)).body.toString();
  assert.equal(metricValue(metrics, 'karasu_config_reloads_total', 'result="success"'), steps - 2 + 1);
  assert.equal(metricValue(metrics, 'karasu_config_reloads_total', 'result="failure"'), 2);
  assert.equal(await k.child.stop(), 0);
});

test('the config file watch reloads valid files (debounced) and keeps the running config on invalid ones', async () => {
  const k = await serve('b', configText(0), true);
  const loop = loadLoop(k.url);
  try {
    let valid = 0;
    let failed = 0;
    for (let i = 1; i <= 8; i++) {
      const invalid = i % 4 === 0;
      const before = await generation(k.url);
      // Written in two parts, as an editor might: the half-written file is never applied.
      const text = configText(i, { invalid });
      await writeFile(k.file, text.slice(0, 40));
      await writeFile(k.file, text);
      if (invalid) {
        failed++;
        await until(`watch reload ${i} counted as failed`, async () => (await failures(k.url)) === failed);
        assert.equal(await generation(k.url), before);
        await assertGeneration(k.url, valid, null);
      } else {
        await until(`watch reload ${i} applied`, async () => (await generation(k.url)) === before + 1);
        await assertGeneration(k.url, i, valid);
        valid = i;
      }
    }
    // Writing the same text again (the last, invalid one) reloads nothing and counts nothing new.
    const gen = await generation(k.url);
    await writeFile(k.file, configText(8, { invalid: true }));
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(await generation(k.url), gen);
    assert.equal(await failures(k.url), failed, 'a half-written file is never applied (debounce)');
  } finally {
    await loop.stop();
  }
  assert.deepEqual(loop.failures, []);
  assert.equal(loop.sockets.size, 6);
  assert.equal(await k.child.stop(), 0);
});

/** A file audit output at `path`; `bufferSize` tells two otherwise equal configs apart. */
function auditText(path: string, bufferSize = 1048576): string {
  return `audit_log:
  enabled: true
  outputs: [file]
  file: {path: ${JSON.stringify(path)}, buffer_size: ${bufferSize}}
`;
}

test('audit_log reloads under load: turned on, changed on the same file, moved, refused when unwritable, turned off; no line lost or doubled', async () => {
  const fileA = join(tmp.dir, 'audit-a', 'audit.jsonl');
  const fileB = join(tmp.dir, 'audit-b', 'audit.jsonl');
  const k = await serve('audit', configText(0), false);
  // Each request carries its own id, and remembers how many reloads had been answered when it was sent
  // (`from`) and how many had been asked for when it completed (`to`): a request with from >= k surely
  // ended after reload k's swap, one with to < k surely before it.
  let answered = 0;
  let asked = 0;
  const sent: Array<{ id: string; from: number; to: number; ok: boolean }> = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 6 });
  let running = true;
  let n = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const entry = { id: `audit-reload-${++n}`, from: answered, to: -1, ok: false };
      sent.push(entry);
      const req = httpRequest(`${k.url}/media/a.txt`, { agent, headers: { 'x-request-id': entry.id } }, (res) => {
        res.resume();
        res.on('end', () => {
          entry.ok = res.statusCode === 200;
          entry.to = asked;
          resolve();
        });
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
  const workers = Promise.all(
    Array.from({ length: 6 }, async () => {
      while (running) await one();
    }),
  );
  const reload = async (audit: string, gen: number) => {
    await writeFile(k.file, configText(0, { audit }));
    asked++;
    const res = await admin(k.url, 'POST', '/admin/reload', { token: tokenOf(0) });
    if (res.status === 200) {
      assert.equal(res.json.generation, gen, JSON.stringify(res.json));
      assert.deepEqual(res.json.needs_restart, [], 'audit_log is applied, not reported as needing a restart');
    }
    answered++;
    await new Promise((r) => setTimeout(r, 300));
    return res;
  };
  try {
    await new Promise((r) => setTimeout(r, 200));
    await reload(auditText(fileA), 2); // phase 1: on, file A
    await reload(auditText(fileA, 2 * 1048576), 3); // phase 2: a new log on the same file while the old one flushes
    await reload(auditText(fileB), 4); // phase 3: file B
    const refused = await reload(auditText(join(k.file, 'audit.jsonl')), 5); // phase 4: under a regular file
    assert.equal(refused.status, 400, JSON.stringify(refused.json));
    assert.match((refused.json.errors as string[]).join('\n'), /audit_log\.file\.path: cannot append to .*audit\.yaml\/audit\.jsonl: EEXIST/);
    assert.equal(await generation(k.url), 4, 'the running configuration (and its audit log) stays');
    await reload('', 5); // phase 5: off
  } finally {
    running = false;
    await workers;
    agent.destroy();
  }
  const ids = (text: string) => text.split('\n').filter(Boolean).map((l) => JSON.parse(l).request_id as string);
  // The replaced logs flush in the background; the counter takes their final counts once they have.
  const total = async () => (await readFile(fileA, 'utf8').then(ids)).length + (await readFile(fileB, 'utf8').then(ids)).length;
  await until('every written line counted, across the replaced logs', async () => {
    const metrics = (await request(`${k.url}/metrics`)).body.toString();
    return metricValue(metrics, 'karasu_audit_lines_total', 'output="file",result="written"') === (await total());
  });
  assert.equal(await k.child.stop(), 0);

  const inA = ids(await readFile(fileA, 'utf8')).filter((id) => id.startsWith('audit-reload-'));
  const inB = ids(await readFile(fileB, 'utf8')).filter((id) => id.startsWith('audit-reload-'));
  const all = [...inA, ...inB];
  assert.equal(new Set(all).size, all.length, 'no line written twice');
  const lines = new Set(all);
  const failed = sent.filter((r) => r.to !== -1 && !r.ok);
  assert.deepEqual(failed, [], 'no request failed during the reloads');
  // Sent after audit was turned on and completed before it was turned off: exactly one line each.
  const between = sent.filter((r) => r.from >= 1 && r.to !== -1 && r.to < 5);
  assert.ok(between.length > 100, `load ran while audited (${between.length} requests)`);
  assert.deepEqual(between.filter((r) => !lines.has(r.id)).map((r) => r.id), [], 'every audited request has its line');
  // Completed before it was turned on, or sent after it was off: no line.
  const outside = sent.filter((r) => r.to === 0 || r.from >= 5);
  assert.ok(outside.length > 10);
  assert.deepEqual(outside.filter((r) => lines.has(r.id)).map((r) => r.id), []);
  // Lines of requests around reloads 1 and 2 are in A, around reload 3 (and the refused reload 4) in B.
  const inBSet = new Set(inB);
  assert.deepEqual(between.filter((r) => r.from >= 3 && inA.includes(r.id)).map((r) => r.id), [], 'nothing sent after the move lands in A');
  assert.deepEqual(between.filter((r) => r.to <= 2 && inBSet.has(r.id)).map((r) => r.id), [], 'nothing completed before the move was asked for lands in B');
});
