// Operations tests (admin API, reload, audit, shutdown): Karasu started from a config *file* (so that
// reloads have something to read), admin calls, and small listeners (syslog).
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditOptions } from '../../src/audit/audit-log.js';
import { loadConfigFile } from '../../src/config/load.js';
import type { Logger } from '../../src/observability/logger.js';
import { startKarasu } from '../../src/server/index.js';
import { request, type HttpResponse } from './http.js';
import { METRICS_PORT_VAR, PORT_VAR, silentLogger, type KarasuUnderTest } from './karasu.js';
import { freePort } from './ports.js';

export const ADMIN_PORT_VAR = '${KARASU_TEST_ADMIN_PORT}';

export interface FileKarasu extends KarasuUnderTest {
  file: string;
  env: Record<string, string>;
  /** Rewrites the config file (same env: the same ports). */
  rewrite(yaml: string): Promise<void>;
}

export async function tempDir(prefix = 'karasu-ops-'): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes `yaml` to `dir/karasu.yaml` and starts Karasu from it (ports as in startKarasuYaml). */
export async function startKarasuFile(
  dir: string,
  yaml: string,
  opts: { env?: Record<string, string>; logger?: Logger; watch?: boolean | { debounceMs: number }; auditOptions?: AuditOptions } = {},
): Promise<FileKarasu> {
  const file = join(dir, 'karasu.yaml');
  for (let attempt = 0; ; attempt++) {
    const env: Record<string, string> = { ...opts.env };
    for (const [placeholder, name] of [
      [PORT_VAR, 'KARASU_TEST_PORT'],
      [METRICS_PORT_VAR, 'KARASU_TEST_METRICS_PORT'],
      [ADMIN_PORT_VAR, 'KARASU_TEST_ADMIN_PORT'],
    ] as const) {
      if (yaml.includes(placeholder)) env[name] = String(await freePort());
    }
    await writeFile(file, yaml);
    const { config } = await loadConfigFile(file, env);
    try {
      const running = await startKarasu(config, {
        logger: opts.logger ?? silentLogger(),
        configEnv: env,
        watch: opts.watch,
        auditOptions: opts.auditOptions,
      });
      return Object.assign(running, {
        file,
        env,
        stop: () => running.close(500),
        rewrite: (text: string) => writeFile(file, text),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

export interface JsonResponse extends HttpResponse {
  json: Record<string, unknown>;
}

/** An admin call: JSON in, JSON out. */
export async function admin(
  base: string,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<JsonResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.body);
  }
  const res = await request(`${base}${path}`, { method, headers, body });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(res.body.toString()) as Record<string, unknown>;
  } catch {
    // not JSON: json stays empty and the test's assertion on it fails with the status
  }
  return { ...res, json };
}

/** The value of one sample of the Prometheus text, 0 when absent. */
export function metricValue(text: string, name: string, labels = ''): number {
  for (const line of text.split('\n')) {
    if ((line.startsWith(`${name}{`) || line.startsWith(`${name} `)) && line.includes(labels)) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

// ─── syslog listeners ──────────────────────────────────────────────────────────────────────────────

export interface SyslogListener {
  port: number;
  /** Messages received, in order (UDP: one per datagram; TCP: octet-counted frames decoded). */
  messages: string[];
  stop(): Promise<void>;
}

export async function udpSyslog(): Promise<SyslogListener> {
  const socket = createSocket('udp4');
  const messages: string[] = [];
  socket.on('message', (msg) => messages.push(msg.toString('utf8')));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return {
    port: socket.address().port,
    messages,
    stop: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

export async function tcpSyslog(): Promise<SyslogListener> {
  const messages: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const space = buf.indexOf(0x20);
        if (space === -1) return;
        const len = Number(buf.subarray(0, space).toString('latin1'));
        if (!Number.isInteger(len) || len <= 0) throw new Error(`bad octet count: ${buf.subarray(0, space).toString('latin1')}`);
        if (buf.length < space + 1 + len) return;
        messages.push(buf.subarray(space + 1, space + 1 + len).toString('utf8'));
        buf = buf.subarray(space + 1 + len);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (server.address() as { port: number }).port,
    messages,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Parses `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG` (RFC 5424). */
export function parseRfc5424(message: string): {
  pri: number;
  version: number;
  timestamp: string;
  host: string;
  app: string;
  procid: string;
  msgid: string;
  sd: string;
  msg: string;
} {
  const m = /^<(\d{1,3})>(\d) (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$/s.exec(message);
  if (!m) throw new Error(`not an RFC 5424 message: ${message.slice(0, 200)}`);
  return { pri: Number(m[1]), version: Number(m[2]), timestamp: m[3], host: m[4], app: m[5], procid: m[6], msgid: m[7], sd: m[8], msg: m[9] };
}

// ─── a slow or huge origin ─────────────────────────────────────────────────────────────────────────

export interface Origin {
  endpoint: string;
  /** Body bytes written so far, all responses. */
  readonly sent: number;
  stop(): Promise<void>;
}

/**
 * An S3-compatible-enough origin for one object (any bucket/key answers it): `size` bytes made of
 * `pattern` repeated, written `chunk` bytes at a time with `delayMs` between chunks (0: as fast as the
 * socket takes them, with backpressure).
 */
export async function startOrigin(opts: { pattern: Buffer; size: number; chunk?: number; delayMs?: number }): Promise<Origin> {
  const { createServer: createHttpServer } = await import('node:http');
  const chunkSize = opts.chunk ?? 64 * 1024;
  let sent = 0;
  const sockets = new Set<Socket>();
  const server = createHttpServer((req, res) => {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(opts.size),
      etag: '"origin-object"',
      'last-modified': new Date(0).toUTCString(),
    });
    if (req.method === 'HEAD') return res.end();
    let offset = 0;
    const pump = (): void => {
      while (offset < opts.size) {
        const n = Math.min(chunkSize, opts.size - offset);
        const start = offset % opts.pattern.length;
        const piece = start + n <= opts.pattern.length ? opts.pattern.subarray(start, start + n) : Buffer.concat([opts.pattern.subarray(start), opts.pattern]).subarray(0, n);
        offset += n;
        sent += n;
        const more = res.write(piece);
        if (offset >= opts.size) return void res.end();
        if (opts.delayMs) return void setTimeout(pump, opts.delayMs);
        if (!more) return void res.once('drain', pump);
      }
    };
    pump();
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    get sent() {
      return sent;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
