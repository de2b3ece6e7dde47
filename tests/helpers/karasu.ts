// Karasu under test: started from YAML through the real config loader, on free loopback ports.
// Also: a raw-socket HTTP client (Node's client and URL() normalise `..`), and Karasu as a child
// process (for RSS measurements and the CLI).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { IncomingHttpHeaders } from 'node:http';
import pino from 'pino';
import { stringify } from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import type { Logger } from '../../src/observability/logger.js';
import { startKarasu, type RunningKarasu } from '../../src/server/index.js';
import { freePort } from './ports.js';
import { S3RVER_CREDENTIALS } from './s3.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** The loader refuses port 0, so configs name these variables and the helper fills in free ports. */
export const PORT_VAR = '${KARASU_TEST_PORT}';
export const METRICS_PORT_VAR = '${KARASU_TEST_METRICS_PORT}';

export type KarasuUnderTest = RunningKarasu & { stop(): Promise<void> };

export const silentLogger = (): Logger => pino({ level: 'silent' });

/**
 * Loads `yaml` with the real loader (env substitution included) and starts Karasu. `${KARASU_TEST_PORT}`
 * and `${KARASU_TEST_METRICS_PORT}` in the YAML become free ports (retried if one is taken meanwhile).
 */
export async function startKarasuYaml(
  yaml: string,
  env: Record<string, string> = {},
  opts: { logger?: Logger } = {},
): Promise<KarasuUnderTest> {
  for (let attempt = 0; ; attempt++) {
    const fullEnv: Record<string, string> = { ...env };
    if (yaml.includes(PORT_VAR)) fullEnv.KARASU_TEST_PORT = String(await freePort());
    if (yaml.includes(METRICS_PORT_VAR)) fullEnv.KARASU_TEST_METRICS_PORT = String(await freePort());
    const { config } = loadConfigText(yaml, 'karasu-test.yaml', fullEnv);
    try {
      const running = await startKarasu(config, { logger: opts.logger ?? silentLogger() });
      return Object.assign(running, { stop: () => running.close(500) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

export interface BucketSpec {
  name: string;
  prefix: string;
  /** Legacy single backend (omit when `replicas` is given). */
  endpoint?: string;
  bucket?: string;
  /** Extra keys under `s3` (timeout, retry, circuit_breaker, replicas, …). */
  s3?: Record<string, unknown>;
  /** Extra keys at bucket level (cors, …). */
  extra?: Record<string, unknown>;
}

/** One `buckets[]` entry as a plain object, credentials defaulting to s3rver's. */
export function bucketEntry(b: BucketSpec): Record<string, unknown> {
  const s3: Record<string, unknown> = {};
  if (b.bucket !== undefined) {
    Object.assign(s3, {
      bucket: b.bucket,
      region: 'us-east-1',
      endpoint: b.endpoint,
      access_key: S3RVER_CREDENTIALS.accessKeyId,
      secret_key: S3RVER_CREDENTIALS.secretAccessKey,
    });
  }
  Object.assign(s3, b.s3);
  return { name: b.name, path_prefix: b.prefix, s3, ...b.extra };
}

/** A `buckets:` list item in YAML (indented for a top-level `buckets:` key). */
export function bucketYaml(b: BucketSpec): string {
  return stringify([bucketEntry(b)])
    .split('\n')
    .map((line) => (line ? `  ${line}` : line))
    .join('\n');
}

/** A replica entry with s3rver credentials. */
export function replica(name: string, endpoint: string, bucket: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    bucket,
    region: 'us-east-1',
    endpoint,
    access_key: S3RVER_CREDENTIALS.accessKeyId,
    secret_key: S3RVER_CREDENTIALS.secretAccessKey,
    ...more,
  };
}

/**
 * A whole config: server on 127.0.0.1 and a free port, no cache, silent logs. `server` keys are merged
 * over the defaults; `top` adds top-level keys (metrics, …).
 */
export function karasuYaml(opts: { buckets: BucketSpec[]; server?: Record<string, unknown>; top?: Record<string, unknown> }): string {
  const doc = {
    server: { address: '127.0.0.1', port: PORT_VAR, ...opts.server },
    buckets: opts.buckets.map(bucketEntry),
    cache: { enabled: false },
    logging: { level: 'silent', format: 'json' },
    ...opts.top,
  };
  // The placeholders must stay plain scalars for substitution into an integer.
  return stringify(doc).replaceAll(`'${PORT_VAR}'`, PORT_VAR).replaceAll(`'${METRICS_PORT_VAR}'`, METRICS_PORT_VAR);
}

// ─── raw HTTP over a socket ─────────────────────────────────────────────────────────────────────────

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Writes `request` verbatim and parses one response (Content-Length bodies, or until close).
 * `request` may be a path: then `GET <path> HTTP/1.1` with Host and Connection: close is sent.
 */
export function rawRequest(port: number, request: string | Buffer, opts: { timeoutMs?: number } = {}): Promise<RawResponse> {
  const data =
    typeof request === 'string' && !request.includes('\r\n')
      ? `GET ${request} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`
      : request;
  return new Promise((resolvePromise, reject) => {
    const socket = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (err) return reject(err);
      const parsed = parse(buf, true);
      if (!parsed) return reject(new Error(`no complete HTTP response: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`));
      resolvePromise(parsed);
    };
    socket.setTimeout(opts.timeoutMs ?? 5000, () => finish(new Error('raw request timed out')));
    // The server may answer and close before the whole request is written (e.g. a huge header block).
    socket.on('error', (err) => (parse(buf, true) ? finish() : finish(err)));
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (parse(buf, false)) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    socket.write(data);
  });
}

function parse(buf: Buffer, atEnd: boolean): RawResponse | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end === -1) return null;
  const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!m) return null;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const body = buf.subarray(end + 4);
  const length = headers['content-length'];
  if (length !== undefined) {
    if (body.length < Number(length)) return null;
    return { status: Number(m[1]), headers, body: body.subarray(0, Number(length)) };
  }
  const status = Number(m[1]);
  if (status === 204 || status === 304 || atEnd) return { status, headers, body };
  return null;
}

// ─── assertions shared by the integration tests ───────────────────────────────────────────────────

export interface ErrorJson {
  error: string;
  message: string;
  status: number;
  request_id: string;
}

/**
 * The response is Karasu's JSON error with this status: `{error, message, status, request_id}`,
 * request_id equal to the X-Request-Id header, and nothing of S3 in it (no XML, no backend names).
 */
export function assertErrorJson(
  res: { status: number; headers: IncomingHttpHeaders; body: Buffer },
  status: number,
  code?: string | RegExp,
  mustNotContain: string[] = [],
): ErrorJson {
  assert.equal(res.status, status, `status; body: ${res.body.toString().slice(0, 300)}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  const text = res.body.toString();
  assert.doesNotMatch(text, /<\?xml|<Error>/, 'no S3 XML in the body');
  for (const s of mustNotContain) assert.ok(!text.includes(s), `error body must not contain ${JSON.stringify(s)}: ${text}`);
  const json = JSON.parse(text) as ErrorJson;
  assert.deepEqual(Object.keys(json).sort(), ['error', 'message', 'request_id', 'status']);
  assert.equal(json.status, status);
  assert.equal(typeof json.error, 'string');
  assert.ok(json.error.length > 0);
  assert.equal(typeof json.message, 'string');
  if (code instanceof RegExp) assert.match(json.error, code);
  else if (code !== undefined) assert.equal(json.error, code);
  assert.ok(res.headers['x-request-id'], 'X-Request-Id header');
  assert.equal(json.request_id, res.headers['x-request-id']);
  return json;
}

// ─── Karasu as a child process ─────────────────────────────────────────────────────────────────────

export interface KarasuProcess {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** `karasu <args…>` from the TypeScript sources (no build needed), cwd = repo root. */
export function spawnCli(args: string[], env: Record<string, string> = {}): KarasuProcess {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '-e',
      "const { main } = await import('./src/cli.ts'); const code = await main(process.argv.slice(1)); if (typeof code === 'number') process.exitCode = code;",
      ...args,
    ],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  live.add(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code) => {
      live.delete(child);
      r(code);
    }),
  );
  return {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return exited;
    },
  };
}

/** Runs the CLI to completion. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = spawnCli(args, env);
  const code = await new Promise<number | null>((r) => {
    if (p.child.exitCode !== null) r(p.child.exitCode);
    else p.child.once('exit', (c) => r(c));
  });
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Resident set size of a process, in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Polls `url` until it answers (any status) or the deadline passes. */
export async function waitForHttp(url: string, timeoutMs = 15_000, alive?: () => boolean): Promise<void> {
  const { request } = await import('./http.js');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (alive && !alive()) throw new Error(`process exited before ${url} answered`);
    try {
      await request(url, { timeoutMs: 1000 });
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
