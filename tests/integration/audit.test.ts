// The audit log over real HTTP: the record's fields for a miss, a hit, a 401, a 404, a JWT user and an
// admin call; client IP through trusted proxies; request ids; redaction; the outputs — a file (rotated
// by size, `log_level` applied), syslog over real UDP and TCP listeners (RFC 5424), S3 export into an
// s3rver bucket (batched, flushed on shutdown) — and no line lost over 10k requests.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { cacheSection, until } from '../helpers/cache-kit.js';
import { request } from '../helpers/http.js';
import { secretBytes, token as jwtToken } from '../helpers/jwt.js';
import { karasuYaml } from '../helpers/karasu.js';
import { metricValue, parseRfc5424, startKarasuFile, tcpSyslog, tempDir, udpSyslog, type FileKarasu, type SyslogListener } from '../helpers/ops.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'audit-src';
const SINK = 'audit-sink';
const SECRET = 'audit-test-jwt-secret-0123456789-abcdefgh';

let s3: S3Handle;
let tmp: Awaited<ReturnType<typeof tempDir>>;
const started: FileKarasu[] = [];
const listeners: SyslogListener[] = [];

before(async () => {
  s3 = await startS3({ buckets: { [BACKEND]: { 'a.txt': 'alpha', 'b.txt': 'bravo' }, [SINK]: {} } });
  tmp = await tempDir('karasu-audit-');
});

after(async () => {
  for (const k of started) await k.stop();
  for (const l of listeners) await l.stop();
  await s3?.stop();
  await tmp?.remove();
});

async function start(name: string, top: Record<string, unknown>, server: Record<string, unknown> = {}): Promise<FileKarasu> {
  const { mkdir } = await import('node:fs/promises');
  const dir = join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  const yaml = karasuYaml({
    buckets: [
      { name: 'media', prefix: '/media', endpoint: s3.endpoint, bucket: BACKEND },
      ...(top.jwt ? [{ name: 'private', prefix: '/private', endpoint: s3.endpoint, bucket: BACKEND, extra: { auth: { enabled: true } } }] : []),
    ],
    server,
    top: { cache: cacheSection({ layers: ['memory'] }), ...top },
  });
  const k = await startKarasuFile(dir, yaml);
  started.push(k);
  return k;
}

type Line = Record<string, unknown>;

async function linesOf(file: string): Promise<Line[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Line);
}

async function waitLines(file: string, n: number): Promise<Line[]> {
  let lines: Line[] = [];
  await until(`${n} audit lines in ${file}`, async () => (lines = await linesOf(file)).length >= n, 10_000);
  return lines;
}

/** A request from a chosen loopback address (127.0.0.2 is a different peer than 127.0.0.1). */
function from(localAddress: string, url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

const FIELDS = [
  'timestamp',
  'request_id',
  'client_ip',
  'user',
  'bucket',
  'object_key',
  'method',
  'path',
  'range',
  'status',
  'bytes_sent',
  'duration_ms',
  'cache_status',
  'cache_tier',
  'upstream_status',
  'user_agent',
  'referer',
  'complete',
];

describe('file + UDP syslog', () => {
  let k: FileKarasu;
  let udp: SyslogListener;
  let file: string;
  let byId: Map<string, Line>;
  let userToken: string;
  const cookie = 'session=cookie-secret-value';

  before(async () => {
    udp = await udpSyslog();
    listeners.push(udp);
    file = join(tmp.dir, 'a', 'logs', 'audit.jsonl');
    k = await start(
      'a',
      {
        jwt: {
          enabled: true,
          algorithm: 'HS256',
          secret: SECRET,
          token_sources: [{ type: 'bearer' }, { type: 'query', name: 'access_token' }],
        },
        audit_log: {
          enabled: true,
          outputs: ['file', 'syslog'],
          file: { path: file },
          syslog: { address: `127.0.0.1:${udp.port}`, protocol: 'udp', facility: 'local4' },
        },
      },
      { trusted_proxies: ['127.0.0.2'] },
    );
    userToken = await jwtToken({ alg: 'HS256', key: secretBytes(SECRET), claims: { sub: 'alice' } });
    const send = (path: string, headers: Record<string, string> = {}) => request(`${k.url}${path}`, { headers });
    assert.equal((await send('/media/a.txt', { 'x-request-id': 'req-miss', 'user-agent': 'ua-test/1.0', referer: 'https://app.example/p?token=ref-secret&x=1', cookie })).status, 200);
    assert.equal((await send('/media/a.txt', { 'x-correlation-id': 'req-hit', range: 'bytes=0-1' })).status, 206);
    assert.equal((await send('/private/a.txt', { 'x-request-id': 'req-401', authorization: 'Bearer not-a-valid-token-secret' })).status, 401);
    assert.equal((await send(`/private/b.txt?access_token=${userToken}&x=1`, { 'x-request-id': 'req-user' })).status, 200);
    assert.equal((await send('/media/missing.txt', { 'x-request-id': 'req-404' })).status, 404);
    assert.equal((await send('/nowhere/x', { 'x-request-id': 'req-noroute' })).status, 404);
    assert.equal(await from('127.0.0.2', `${k.url}/media/b.txt`, { 'x-request-id': 'req-xff-trusted', 'x-forwarded-for': '198.51.100.1, 203.0.113.7' }), 200);
    assert.equal(await from('127.0.0.1', `${k.url}/media/b.txt`, { 'x-request-id': 'req-xff-untrusted', 'x-forwarded-for': '203.0.113.7' }), 200);
    assert.equal((await request(`${k.url}/admin/cache/purge/media/b.txt`, { method: 'POST', headers: { 'x-request-id': 'req-admin' } })).status, 200);
    assert.equal((await send('/health')).status, 200);
    const lines = await waitLines(file, 9);
    byId = new Map(lines.map((l) => [String(l.request_id), l]));
  });

  test('one line per request, every field; probes are not audited', () => {
    assert.equal(byId.size, 9);
    for (const line of byId.values()) assert.deepEqual(Object.keys(line), FIELDS);
    const miss = byId.get('req-miss')!;
    assert.match(String(miss.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual({ ...miss, timestamp: 0, duration_ms: 0 }, {
      timestamp: 0,
      request_id: 'req-miss',
      client_ip: '127.0.0.1',
      user: null,
      bucket: 'media',
      object_key: 'a.txt',
      method: 'GET',
      path: '/media/a.txt',
      range: null,
      status: 200,
      bytes_sent: 5,
      duration_ms: 0,
      cache_status: 'miss',
      cache_tier: null,
      upstream_status: 200,
      user_agent: 'ua-test/1.0',
      referer: 'https://app.example/p?token=[REDACTED]&x=1',
      complete: true,
    });
    assert.equal(typeof miss.duration_ms, 'number');
    assert.ok((miss.duration_ms as number) >= 0);
  });

  test('hit: range, bytes, cache tier; X-Correlation-ID honoured', () => {
    const hit = byId.get('req-hit')!;
    assert.equal(hit.status, 206);
    assert.equal(hit.range, 'bytes=0-1');
    assert.equal(hit.bytes_sent, 2);
    assert.equal(hit.cache_status, 'hit');
    assert.equal(hit.cache_tier, 'memory');
    assert.equal(hit.upstream_status, null);
  });

  test('401, JWT user, 404 from S3, 404 without a route', () => {
    const denied = byId.get('req-401')!;
    assert.deepEqual([denied.status, denied.bucket, denied.object_key, denied.user, denied.cache_status, denied.upstream_status], [401, 'private', 'a.txt', null, null, null]);
    const user = byId.get('req-user')!;
    assert.deepEqual([user.status, user.user, user.path, user.object_key], [200, 'alice', '/private/b.txt', 'b.txt']);
    const missing = byId.get('req-404')!;
    assert.deepEqual([missing.status, missing.upstream_status, missing.cache_status, missing.object_key], [404, 404, 'miss', 'missing.txt']);
    const noRoute = byId.get('req-noroute')!;
    assert.deepEqual([noRoute.status, noRoute.bucket, noRoute.object_key, noRoute.path], [404, null, null, '/nowhere/x']);
  });

  test('X-Forwarded-For only from server.trusted_proxies', () => {
    assert.equal(byId.get('req-xff-trusted')!.client_ip, '203.0.113.7');
    assert.equal(byId.get('req-xff-untrusted')!.client_ip, '127.0.0.1');
  });

  test('admin calls are audited', () => {
    const line = byId.get('req-admin')!;
    assert.deepEqual([line.method, line.path, line.status, line.bucket], ['POST', '/admin/cache/purge/media/b.txt', 200, null]);
  });

  test('no token, cookie or secret query value anywhere in the file', async () => {
    const text = await readFile(file, 'utf8');
    for (const secret of [userToken, 'not-a-valid-token-secret', 'cookie-secret-value', 'ref-secret', 'access_token']) {
      assert.ok(!text.includes(secret), `audit file must not contain ${secret.slice(0, 20)}`);
    }
  });

  test('UDP syslog: one RFC 5424 datagram per line, facility local4, severity by status', async () => {
    await until('9 syslog datagrams', () => udp.messages.length >= 9);
    assert.equal(udp.messages.length, 9);
    for (const message of udp.messages) {
      const m = parseRfc5424(message);
      assert.equal(m.version, 1);
      assert.equal(m.app, 'karasu');
      assert.equal(m.msgid, 'audit');
      assert.equal(m.sd, '-');
      assert.equal(m.procid, String(process.pid));
      assert.match(m.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const record = JSON.parse(m.msg) as Line;
      assert.deepEqual(record, byId.get(String(record.request_id)));
      const severity = (record.status as number) >= 400 ? 4 : 6;
      assert.equal(m.pri, 20 * 8 + severity, `PRI for status ${record.status}`);
    }
  });

  test('karasu_audit_lines_total counts written lines per output', async () => {
    const text = (await request(`${k.url}/metrics`)).body.toString();
    assert.equal(metricValue(text, 'karasu_audit_lines_total', 'output="file",result="written"'), 9);
    assert.equal(metricValue(text, 'karasu_audit_lines_total', 'output="syslog",result="written"'), 9);
    assert.match(text, /karasu_audit_lines_total\{output="file",result="dropped"\} 0/);
  });
});

describe('file rotation and log_level', () => {
  test('rotation by size keeps max_backup_files; log_level warn records only status ≥ 400', async () => {
    const dir = join(tmp.dir, 'rot', 'logs');
    const file = join(dir, 'audit.jsonl');
    const k = await start('rot', {
      audit_log: {
        enabled: true,
        log_level: 'warn',
        file: { path: file, max_file_size_mb: 0.004, max_backup_files: 3, rotation_policy: 'size', buffer_size: 8192 },
      },
    });
    for (let i = 0; i < 5; i++) assert.equal((await request(`${k.url}/media/a.txt`)).status, 200);
    for (let i = 0; i < 120; i++) assert.equal((await request(`${k.url}/media/missing-${i}`, { headers: { 'x-request-id': `rot-${i}` } })).status, 404);
    await k.stop();
    const names = (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
    const backups = names.filter((n) => n !== 'audit.jsonl');
    assert.equal(backups.length, 3, `kept backups: ${names.join(', ')}`);
    for (const b of backups) assert.match(b, /^audit\.\d{8}_\d{6}_\d{6}(-\d+)?\.jsonl$/);
    const kept: Line[] = [];
    for (const n of names) kept.push(...(await linesOf(join(dir, n))));
    assert.ok(kept.length > 0);
    assert.ok(kept.every((l) => l.status === 404), 'log_level warn: no 200 lines');
    // The newest lines are all there, in order, and the files rotated near the size limit.
    const ids = kept.map((l) => String(l.request_id));
    assert.equal(ids[ids.length - 1], 'rot-119');
    assert.deepEqual(ids, ids.slice().sort((a, b) => Number(a.slice(4)) - Number(b.slice(4))), 'in order across files');
    for (const n of backups) {
      const { size } = await import('node:fs/promises').then((fs) => fs.stat(join(dir, n)));
      // Rotated once a write takes the file past the limit; a write is one batch (≤ buffer_size / 2).
      assert.ok(size >= 4000 && size <= 4 * 1024 + 4096, `${n}: ${size} bytes`);
    }
  });
});

describe('TCP syslog + S3 export', () => {
  test('RFC 5424 over TCP (octet counting); batches in the bucket; the rest uploaded at shutdown', async () => {
    const tcp = await tcpSyslog();
    listeners.push(tcp);
    const k = await start('b', {
      audit_log: {
        enabled: true,
        syslog: { address: `127.0.0.1:${tcp.port}`, protocol: 'tcp', facility: 'local7' },
        s3_export: {
          bucket: SINK,
          region: 'us-east-1',
          endpoint: s3.endpoint,
          access_key: 'S3RVER',
          secret_key: 'S3RVER',
          path_prefix: 'karasu/',
          batch_size: 25,
          export_interval_seconds: 3600,
        },
      },
    });
    const ids = Array.from({ length: 60 }, (_, i) => `s3-${i}`);
    for (const id of ids) assert.equal((await request(`${k.url}/media/a.txt`, { headers: { 'x-request-id': id } })).status, 200);

    const objects = async () => (await s3.client.send(new ListObjectsV2Command({ Bucket: SINK, Prefix: 'karasu/' }))).Contents ?? [];
    await until('two full batches uploaded', async () => (await objects()).length === 2, 10_000);
    await until('60 TCP syslog messages', () => tcp.messages.length === 60);
    for (const [i, message] of tcp.messages.entries()) {
      const m = parseRfc5424(message);
      assert.equal(m.pri, 23 * 8 + 6);
      assert.equal((JSON.parse(m.msg) as Line).request_id, ids[i]);
    }

    await k.stop(); // the last 10 lines are uploaded on shutdown
    const keys = (await objects()).map((o) => o.Key!).sort();
    assert.equal(keys.length, 3);
    for (const key of keys) assert.match(key, /^karasu\/karasu-audit-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f]{8}-\d{6}\.jsonl$/);
    const uploaded: string[] = [];
    for (const key of keys) {
      const out = await s3.client.send(new GetObjectCommand({ Bucket: SINK, Key: key }));
      const text = await out.Body!.transformToString();
      uploaded.push(...text.trim().split('\n').map((l) => String((JSON.parse(l) as Line).request_id)));
    }
    assert.deepEqual(uploaded, ids);
  });
});

describe('no line lost', () => {
  test('10,000 requests from 16 keep-alive connections → 10,000 lines, each id once', async () => {
    const file = join(tmp.dir, 'many', 'audit.jsonl');
    const k = await start('many', { audit_log: { enabled: true, file: { path: file } } });
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const N = 10_000;
    let next = 0;
    let failed = 0;
    const one = (i: number) =>
      new Promise<void>((resolve) => {
        const req = httpRequest(`${k.url}/media/a.txt`, { agent, headers: { 'x-request-id': `n-${i}` } }, (res) => {
          if (res.statusCode !== 200) failed++;
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', () => {
          failed++;
          resolve();
        });
        req.end();
      });
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < N) await one(next++);
      }),
    );
    agent.destroy();
    assert.equal(failed, 0);
    const metrics = (await request(`${k.url}/metrics`)).body.toString();
    await k.stop();
    const lines = await linesOf(file);
    assert.equal(lines.length, N);
    assert.equal(new Set(lines.map((l) => l.request_id)).size, N);
    assert.equal(metricValue(metrics, 'karasu_audit_lines_total', 'output="file",result="dropped"'), 0);
  });
});
