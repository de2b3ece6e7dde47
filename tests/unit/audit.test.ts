// Audit building blocks: redaction, client IP through trusted proxies, the RFC 5424 line, daily file
// rotation, back-pressure (lines dropped, counted and logged, never blocking), S3 upload retries, and
// the `karasu warm` progress output.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';
import type { IncomingMessage } from 'node:http';
import pino from 'pino';
import client from 'prom-client';
import { AuditLog, auditMetrics } from '../../src/audit/audit-log.js';
import type { S3Client } from '@aws-sdk/client-s3';
import { progressBar, progressLine, progressWriter } from '../../src/admin/progress.js';
import { FileSink, backupName } from '../../src/audit/file.js';
import { buildRecord, durationText, encodeLine, recordLine, type RequestFacts } from '../../src/audit/record.js';
import { redactUrl } from '../../src/audit/redact.js';
import { S3ExportSink } from '../../src/audit/s3.js';
import { formatRfc5424, TcpSyslogSink } from '../../src/audit/syslog.js';
import { TrustedProxies } from '../../src/http/client-ip.js';
import { until } from '../helpers/cache-kit.js';
import { tempDir } from '../helpers/ops.js';

const silent = pino({ level: 'silent' });
const dirs: Array<{ remove(): Promise<void> }> = [];
after(async () => {
  for (const d of dirs) await d.remove();
});

/** A pino logger whose lines are collected. */
function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines };
}

describe('redaction and client IP', () => {
  test('secret-looking query values and userinfo are replaced; other parameters stay', () => {
    assert.equal(redactUrl('https://a.example/p?token=abc&page=2&X-Amz-Signature=ff&jwt=x.y.z'), 'https://a.example/p?token=[REDACTED]&page=2&X-Amz-Signature=[REDACTED]&jwt=[REDACTED]');
    assert.equal(redactUrl('https://user:pw@a.example/x?q=1'), 'https://[REDACTED]@a.example/x?q=1');
    assert.equal(redactUrl('https://a.example/x?access%5Ftoken=abc'), 'https://a.example/x?access%5Ftoken=[REDACTED]');
    assert.equal(redactUrl('https://a.example/plain'), 'https://a.example/plain');
    assert.equal(redactUrl(`https://a.example/?q=${'x'.repeat(5000)}`).length, 1024);
  });

  test('X-Forwarded-For is read from the right, skipping trusted proxies, only when the peer is trusted', () => {
    const t = new TrustedProxies(['10.0.0.0/8', '127.0.0.1', 'fd00::/8']);
    assert.equal(t.clientIp('127.0.0.1', '198.51.100.1, 203.0.113.7, 10.1.2.3'), '203.0.113.7');
    assert.equal(t.clientIp('::ffff:127.0.0.1', '203.0.113.7'), '203.0.113.7');
    assert.equal(t.clientIp('192.0.2.1', '203.0.113.7'), '192.0.2.1', 'untrusted peer: the header is ignored');
    assert.equal(t.clientIp('127.0.0.1', 'not-an-ip, 203.0.113.7'), '203.0.113.7');
    assert.equal(t.clientIp('127.0.0.1', '203.0.113.7, garbage'), '127.0.0.1', 'a hop that is not an address stops the walk');
    assert.equal(t.clientIp('fd00::1', '2001:db8::5'), '2001:db8::5');
    assert.equal(t.clientIp('127.0.0.1', ['10.0.0.1', '10.0.0.2']), '10.0.0.1', 'all trusted: the leftmost');
    assert.equal(new TrustedProxies([]).clientIp('127.0.0.1', '203.0.113.7'), '127.0.0.1');
  });
});

describe('the record line', () => {
  test('written field by field, it is exactly JSON.stringify of the record (escaping included), as a string and as bytes', () => {
    const out = Buffer.alloc(64 * 1024, 0xee);
    /** The line as a string, and encoded straight into a buffer (after some other bytes, and not fitting). */
    const assertLine = (f: RequestFacts, now: number, why = '') => {
      const expected = `${JSON.stringify(buildRecord(f, now))}\n`;
      const bytes = Buffer.from(expected);
      // Encoded first, so the parts' bytes are made from parts the string path has not seen yet.
      const at = 7;
      const end = encodeLine(f, now, out, at);
      assert.equal(end, at + bytes.length, why);
      assert.equal(out.subarray(at, end).toString(), expected, why);
      assert.equal(encodeLine(f, now, out.subarray(0, at + bytes.length - 1), at), -1, `too small: ${why}`);
      assert.equal(recordLine(f, now), expected, why);
    };
    const req = {
      headers: { 'user-agent': 'agent "quoted" \\ \u00e9 \n', referer: 'https://x.example/?token=t&q="', range: 'bytes=0-1', 'x-forwarded-for': '203.0.113.9' },
      socket: { remoteAddress: '::ffff:127.0.0.1' },
    } as unknown as IncomingMessage;
    const base: RequestFacts = {
      req,
      id: 'id-1',
      method: 'GET',
      path: '/a/"odd"\\path\u2028',
      status: 206,
      bytesSent: 2,
      durationMs: 1.23456,
      user: 'üser "x"',
      bucket: 'b',
      objectKey: 'k"\\',
      cacheStatus: 'STALE',
      cacheTier: 'disk',
      upstreamStatus: null,
      complete: false,
      trustedProxies: ['127.0.0.1'],
    };
    const variants: RequestFacts[] = [
      base,
      { ...base, user: null, bucket: null, objectKey: null, cacheStatus: null, cacheTier: null, upstreamStatus: 502, id: 'weird id "x"' },
      { ...base, cacheStatus: 'HIT', cacheTier: 'memory', upstreamStatus: 503 },
      { ...base, cacheStatus: 'MISS', cacheTier: null, upstreamStatus: 200 },
      { ...base, cacheStatus: 'REVALIDATED', cacheTier: 'memory', upstreamStatus: 304 },
      ...['/lone\ud800surrogate', '/emoji-\u{1F600}', '/ctl\u0000\u001f\u007f', '/tab\tquote"back\\slash', '/plain-ascii_~!'].map((path) => ({ ...base, path, objectKey: path, user: path })),
      ...[0, 0.004, 0.005, 0.015, 0.1, 0.125, 0.999, 0.996, 1.5, 2, 10.01, 12345.678, 99.999, 1e6 + 0.07, 1e15 + 0.5].map((durationMs) => ({ ...base, durationMs })),
    ];
    for (const f of variants) {
      const now = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
      assert.ok(recordLine(f, now).endsWith('}\n'));
      assertLine(f, now, f.path);
    }
    // Consecutive lines that differ in one field each (the line's parts are reused while their fields repeat).
    const one: Array<Partial<RequestFacts>> = [
      { user: 'other' }, { user: null }, { bucket: 'b2' }, { objectKey: 'k2' }, { method: 'HEAD' }, { path: '/other' },
      { status: 200 }, { bytesSent: 3 }, { cacheStatus: 'HIT' }, { cacheTier: 'memory' }, { upstreamStatus: 200 }, { complete: true },
      { req: { ...req, headers: { ...req.headers, range: 'bytes=1-1' } } as unknown as IncomingMessage },
      { req: { ...req, headers: { ...req.headers, 'user-agent': 'curl/8' } } as unknown as IncomingMessage },
      { req: { ...req, headers: { ...req.headers, referer: undefined } } as unknown as IncomingMessage },
      { req: { ...req, headers: { ...req.headers, 'x-forwarded-for': '203.0.113.10' } } as unknown as IncomingMessage },
    ];
    for (const change of one) {
      for (const f of [base, { ...base, ...change }, { ...base, ...change }, base]) {
        assertLine(f, 0, `after ${JSON.stringify(Object.keys(change))}`);
      }
    }
    for (let i = 0; i < 100_000; i++) {
      const ms = i < 50_000 ? Math.random() * 10 ** (i % 7) : i / 1000;
      assert.equal(durationText(ms), String(Math.round(ms * 100) / 100), `duration ${ms}`);
    }
    const record = buildRecord(base, 0);
    assert.equal(record.client_ip, '203.0.113.9');
    assert.equal(record.cache_tier, 'disk');
    assert.equal(record.cache_status, 'stale');
    assert.equal(record.duration_ms, 1.23);
  });
});

describe('outputs', () => {
  test('RFC 5424 line: PRI, version, timestamp, host, app, procid, msgid, no structured data', () => {
    assert.equal(formatRfc5424(16, 6, Date.UTC(2026, 0, 2, 3, 4, 5, 6), 'host', 42, '{"a":1}'), '<134>1 2026-01-02T03:04:05.006Z host karasu 42 audit - {"a":1}');
  });

  test('backup names follow Yatagarasu (stem.YYYYmmdd_HHMMSS_ffffff.ext)', () => {
    assert.equal(backupName('audit.jsonl', new Date(Date.UTC(2026, 0, 2, 15, 4, 5, 123)), 1), 'audit.20260102_150405_123000.jsonl');
    assert.equal(backupName('audit.jsonl', new Date(Date.UTC(2026, 0, 2, 15, 4, 5, 123)), 3), 'audit.20260102_150405_123000-3.jsonl');
  });

  test('daily rotation: lines of a new period go to a new file (period shortened to 1 s for the test)', async () => {
    const tmp = await tempDir('karasu-audit-unit-');
    dirs.push(tmp);
    const path = join(tmp.dir, 'audit.jsonl');
    const sink = await FileSink.open(
      { path, max_file_size_mb: 50, max_backup_files: 5, rotation_policy: 'daily', buffer_size: 1 << 20 },
      silent,
      { dailyInterval: '1s' },
    );
    sink.write('{"n":1}\n');
    await until('first line written', async () => (await readFile(path, 'utf8').catch(() => '')).includes('"n":1'));
    // An empty period may rotate first (the file is created just before the stream opens): wait for the
    // rotation that carries the first line away.
    const rotatedWith = async (line: string) => {
      for (const n of await readdir(tmp.dir)) {
        // A file listed may be renamed by a rotation before it is read: look again on the next pass.
        if (/^audit\.\d{8}_\d{6}_000000(?:-\d+)?\.jsonl$/.test(n) && (await readFile(join(tmp.dir, n), 'utf8').catch(() => '')).includes(line)) return true;
      }
      return false;
    };
    await until('rotated at the period boundary', () => rotatedWith('"n":1'), 3000);
    sink.write('{"n":2}\n');
    await sink.close(Date.now() + 2000);
    // With 1 s periods a slow machine may see more than one boundary (an empty period rotates too):
    // what matters is that the two lines landed in different files, the first one in a rotated file.
    const names = (await readdir(tmp.dir)).filter((n) => !n.startsWith('.'));
    const contents = new Map(await Promise.all(names.map(async (n) => [n, await readFile(join(tmp.dir, n), 'utf8')] as const)));
    const fileOf = (line: string) => [...contents].find(([, text]) => text.includes(line))?.[0];
    assert.notEqual(fileOf('"n":1'), undefined);
    assert.notEqual(fileOf('"n":1'), 'audit.jsonl');
    assert.notEqual(fileOf('"n":2'), undefined);
    assert.notEqual(fileOf('"n":2'), fileOf('"n":1'));
    assert.equal([...contents.values()].join('').split('\n').filter(Boolean).length, 2, 'each line once');
    assert.equal(sink.written, 2);
  });

  test('file back-pressure: beyond buffer_size, lines are dropped and counted; write() never waits', async () => {
    const tmp = await tempDir('karasu-audit-unit-');
    dirs.push(tmp);
    const sink = await FileSink.open(
      { path: join(tmp.dir, 'a.jsonl'), max_file_size_mb: 50, max_backup_files: 5, rotation_policy: 'size', buffer_size: 4096 },
      silent,
    );
    const line = `${JSON.stringify({ pad: 'x'.repeat(200) })}\n`;
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) sink.write(line);
    assert.ok(performance.now() - t0 < 100, 'writing is queueing, not I/O');
    assert.ok(sink.dropped > 900, `dropped ${sink.dropped}`);
    await sink.close(Date.now() + 2000);
    assert.equal(sink.written + sink.dropped, 1000);
  });

  test('TCP syslog back-pressure: a server that stops reading → lines dropped and counted, then logged', async () => {
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s);
      s.pause(); // never reads
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const { log, lines } = capture();
    const sink = new TcpSyslogSink({ host: '127.0.0.1', port, protocol: 'tcp', facility: 'local0' }, log);
    await until('connected', () => sockets.size === 1);
    const line = `${JSON.stringify({ pad: 'y'.repeat(16 * 1024) })}\n`;
    const t0 = performance.now();
    for (let i = 0; i < 1200; i++) sink.write(line, 6, Date.now());
    assert.ok(performance.now() - t0 < 2000);
    assert.ok(sink.dropped > 0, 'some lines dropped once 4 MiB wait for the socket');
    assert.equal(sink.written + sink.dropped, 1200);
    await sink.close(Date.now() + 200);
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
    assert.ok(lines.some((l) => /shutdown deadline reached; unsent lines dropped/.test(String(l.msg))));
  });

  test('the audit log reports dropped lines in its log and in karasu_audit_lines_total', async () => {
    const tmp = await tempDir('karasu-audit-unit-');
    dirs.push(tmp);
    const { log, lines } = capture();
    const audit = (await AuditLog.create(
      {
        enabled: true,
        outputs: ['file'],
        log_level: 'info',
        file: { path: join(tmp.dir, 'a.jsonl'), max_file_size_mb: 50, max_backup_files: 5, rotation_policy: 'size', buffer_size: 1024 },
        syslog: null,
        s3_export: null,
      },
      log,
    ))!;
    const registry = new client.Registry();
    auditMetrics(registry).track(audit);
    const req = { headers: { 'user-agent': 'x'.repeat(500) }, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
    for (let i = 0; i < 200; i++) {
      audit.record({ req, id: `r${i}`, method: 'GET', path: '/a', status: 200, bytesSent: 1, durationMs: 1, user: null, bucket: 'a', objectKey: 'a', cacheStatus: null, cacheTier: null, upstreamStatus: 200, complete: true, trustedProxies: [] });
    }
    await audit.close(2000);
    const report = lines.find((l) => l.msg === 'audit lines dropped: the output fell behind or failed');
    assert.ok(report, 'a warning names the output and the count');
    assert.equal(report.output, 'file');
    const metrics = await registry.metrics();
    const dropped = Number(/karasu_audit_lines_total\{output="file",result="dropped"\} (\d+)/.exec(metrics)?.[1]);
    const written = Number(/karasu_audit_lines_total\{output="file",result="written"\} (\d+)/.exec(metrics)?.[1]);
    assert.equal(dropped, report.dropped_total);
    assert.ok(dropped > 0);
    assert.equal(dropped + written, 200);
  });

  test('a reload on the same file: the new log starts writing once the old one has closed the file; lines kept in order; one counter across both', async () => {
    const tmp = await tempDir('karasu-audit-unit-');
    dirs.push(tmp);
    const path = join(tmp.dir, 'a.jsonl');
    const config = (bufferSize: number) => ({
      enabled: true,
      outputs: ['file' as const],
      log_level: 'info' as const,
      file: { path, max_file_size_mb: 50, max_backup_files: 5, rotation_policy: 'size' as const, buffer_size: bufferSize },
      syslog: null,
      s3_export: null,
    });
    const registry = new client.Registry();
    const counts = auditMetrics(registry);
    const req = { headers: {}, socket: { remoteAddress: '127.0.0.1' } } as unknown as IncomingMessage;
    const facts = (id: string) => ({ req, id, method: 'GET', path: '/a', status: 200, bytesSent: 1, durationMs: 1, user: null, bucket: 'a', objectKey: 'a', cacheStatus: null, cacheTier: null, upstreamStatus: 200, complete: true, trustedProxies: [] });
    const first = (await AuditLog.create(config(1 << 20), silent))!;
    counts.track(first);
    for (let i = 0; i < 100; i++) first.record(facts(`first-${i}`));
    const second = (await AuditLog.create(config(2 << 20), silent, {}, first))!;
    counts.track(second);
    // More than a batch (64 KiB) of lines, and more than one flush interval: batches wait in memory.
    for (let i = 0; i < 1500; i++) second.record(facts(`second-${i}`));
    await new Promise((r) => setTimeout(r, 250));
    const waiting = await readFile(path, 'utf8');
    assert.equal(waiting.includes('second-'), false, 'nothing of the new log written while the old one has the file');
    assert.equal(second.sinks[0]!.written, 0);
    await first.close(2000);
    await second.close(2000);
    const ids = (await readFile(path, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l).request_id as string);
    assert.deepEqual(ids, [...Array.from({ length: 100 }, (_, i) => `first-${i}`), ...Array.from({ length: 1500 }, (_, i) => `second-${i}`)]);
    const metrics = await registry.metrics();
    assert.equal(Number(/karasu_audit_lines_total\{output="file",result="written"\} (\d+)/.exec(metrics)?.[1]), 1600);
    assert.equal(Number(/karasu_audit_lines_total\{output="file",result="dropped"\} (\d+)/.exec(metrics)?.[1]), 0);
  });

  test('a file sink still waiting for the previous writer at its shutdown deadline drops its lines and counts them', async () => {
    const tmp = await tempDir('karasu-audit-unit-');
    dirs.push(tmp);
    const sink = await FileSink.open(
      { path: join(tmp.dir, 'a.jsonl'), max_file_size_mb: 50, max_backup_files: 5, rotation_policy: 'size', buffer_size: 1 << 20 },
      silent,
      {},
      new Promise<void>(() => {}),
    );
    for (let i = 0; i < 10; i++) sink.write(`{"n":${i}}\n`);
    await sink.close(Date.now() + 50);
    assert.equal(sink.written, 0);
    assert.equal(sink.dropped, 10);
    assert.equal(await readFile(join(tmp.dir, 'a.jsonl'), 'utf8'), '');
  });

  test('S3 export retries a failed upload, keeps the batch in order, and uploads the rest on close', async () => {
    const puts: Array<{ key: string; body: string }> = [];
    let failures = 2;
    const client = {
      async send(command: { input: { Key: string; Body: string } }) {
        if (failures-- > 0) throw new Error('503 SlowDown');
        puts.push({ key: command.input.Key, body: command.input.Body });
        return {};
      },
      destroy() {},
    } as unknown as S3Client;
    const { log, lines } = capture();
    const sink = new S3ExportSink(
      { bucket: 'b', region: 'us-east-1', path_prefix: 'p/', export_interval_seconds: 3600, endpoint: null, access_key: null, secret_key: null, batch_size: 3 },
      log,
      { client },
    );
    for (let i = 0; i < 7; i++) sink.write(`{"i":${i}}\n`);
    await until('two batches uploaded after two failures', () => puts.length === 2, 5000);
    await sink.close(Date.now() + 2000);
    assert.deepEqual(
      puts.map((p) => p.body.trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i)),
      [[0, 1, 2], [3, 4, 5], [6]],
    );
    for (const p of puts) assert.match(p.key, /^p\/karasu-audit-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d-[0-9a-f]{8}-\d{6}\.jsonl$/);
    assert.equal(sink.written, 7);
    assert.equal(sink.dropped, 0);
    assert.ok(lines.some((l) => l.msg === 'audit S3 export: upload failed; retrying'));
    assert.ok(lines.some((l) => l.msg === 'audit S3 export: uploads succeed again'));
  });

  test('S3 export that never succeeds: lines still queued at the shutdown deadline are counted as dropped', async () => {
    const client = { send: async () => Promise.reject(new Error('down')), destroy() {} } as unknown as S3Client;
    const { log, lines } = capture();
    const sink = new S3ExportSink(
      { bucket: 'b', region: 'us-east-1', path_prefix: '', export_interval_seconds: 3600, endpoint: null, access_key: null, secret_key: null, batch_size: 100 },
      log,
      { client },
    );
    for (let i = 0; i < 5; i++) sink.write(`{"i":${i}}\n`);
    await sink.close(Date.now() + 300);
    assert.equal(sink.dropped, 5);
    assert.ok(lines.some((l) => /shutdown deadline reached/.test(String(l.msg))));
  });
});

describe('karasu warm progress', () => {
  const p = { listed: 40, warmed: 10, skipped: 4, failed: 1, bytes: 3 * 1024 * 1024, listing_done: true, state: 'running' as const };

  test('terminal: a bar redrawn in place', () => {
    assert.equal(progressBar(p, 10), '[####......] 15/40 objects  warmed 10, skipped 4, failed 1, 3.0 MiB');
    assert.equal(progressBar({ ...p, listing_done: false }, 10), '[####......]  15/40+ objects  warmed 10, skipped 4, failed 1, 3.0 MiB');
    const out: string[] = [];
    const tty = Object.assign(new Writable({ write: (c: Buffer, _e, done) => (out.push(c.toString()), done()) }), { isTTY: true });
    const w = progressWriter(tty as unknown as NodeJS.WriteStream);
    w.update(p);
    w.update(p);
    w.finish({ ...p, warmed: 35, state: 'completed' });
    assert.equal(out.length, 2, 'unchanged progress is not redrawn');
    assert.ok(out[0].startsWith('\r['));
    assert.ok(out[1].endsWith('\n'));
  });

  test('not a terminal: plain lines, only on change', () => {
    assert.equal(progressLine(p), 'prewarm: 15 of 40 objects done (warmed 10, skipped 4, failed 1, 3.0 MiB)');
    const out: string[] = [];
    const pipe = new Writable({ write: (c: Buffer, _e, done) => (out.push(c.toString()), done()) });
    const w = progressWriter(pipe, 0);
    w.update(p);
    w.update(p);
    w.update({ ...p, warmed: 11 });
    w.finish({ ...p, warmed: 11 });
    assert.deepEqual(out, [
      'prewarm: 15 of 40 objects done (warmed 10, skipped 4, failed 1, 3.0 MiB)\n',
      'prewarm: 16 of 40 objects done (warmed 11, skipped 4, failed 1, 3.0 MiB)\n',
    ]);
  });
});
