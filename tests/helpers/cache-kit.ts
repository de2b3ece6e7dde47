// Shared pieces of the cache integration tests (tests/integration/cache-*.test.ts): a controllable
// counting relay in front of s3rver, a cache config builder, and small request/poll helpers.
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { Agent, createServer, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { TierStats } from '../../src/cache/types.js';
import { request, sha256, type HttpResponse } from './http.js';
import { karasuYaml, startKarasuYaml, type BucketSpec, type KarasuUnderTest } from './karasu.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms until it is true; fails with `what` after `ms`. */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(20);
  }
}

/** A deterministic, position-dependent body: misplaced or repeated bytes change its hash. */
export function body(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

// ─── relay ──────────────────────────────────────────────────────────────────────────────────────────

export interface CtlRelayStats {
  requests: number;
  gets: number;
  heads: number;
  /** Response body bytes sent on to Karasu. */
  bodyBytes: number;
  /** GETs that carried If-None-Match or If-Modified-Since. */
  conditional: number;
  statuses: number[];
  /** Request headers of every request, in order. */
  requestHeaders: IncomingHttpHeaders[];
}

export interface CtlRelay {
  url: string;
  stats(): CtlRelayStats;
  reset(): void;
  /**
   * Body control for the next responses: `holdAfter` bytes pass, then the body waits for release();
   * `cutAfter` bytes pass, then the connection to Karasu is destroyed; `holdHeaders` holds the
   * response headers until release(); `flipAt` inverts the body
   * byte at that offset (same length, wrong content: only a checksum can tell).
   */
  mode: { holdAfter?: number; cutAfter?: number; holdHeaders?: boolean; flipAt?: number };
  /** Releases every held response (headers and bodies); `cut`: held bodies are cut off instead. */
  release(opts?: { cut?: boolean }): void;
  /** Bytes of body sent to Karasu so far in the responses currently being held. */
  readonly heldAt: number;
  /** Responses currently held (headers or body). */
  readonly holding: number;
  stop(): Promise<void>;
}

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'transfer-encoding']);

function endToEnd(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  return out;
}

/**
 * Like tests/helpers/relay.ts (counts requests and body bytes between Karasu and s3rver), plus control
 * over the body: hold it after N bytes until release(), cut it after N bytes, or slow it down.
 */
export async function startCtlRelay(targetUrl: string): Promise<CtlRelay> {
  const target = new URL(targetUrl);
  const agent = new Agent({ keepAlive: true });
  const fresh = (): CtlRelayStats => ({ requests: 0, gets: 0, heads: 0, bodyBytes: 0, conditional: 0, statuses: [], requestHeaders: [] });
  let stats = fresh();
  const sockets = new Set<Socket>();
  let waiters: Array<(cut: boolean) => void> = [];
  let holding = 0;
  let heldAt = 0;
  /** Resolves true when the held response is to be cut off. */
  const wait = (): Promise<boolean> =>
    new Promise((r) => {
      holding++;
      waiters.push((cut) => {
        holding--;
        r(cut);
      });
    });

  const relay: CtlRelay = {
    url: '',
    stats: () => ({ ...stats, statuses: [...stats.statuses], requestHeaders: [...stats.requestHeaders] }),
    reset: () => {
      stats = fresh();
    },
    mode: {},
    release(opts = {}) {
      const w = waiters;
      waiters = [];
      for (const f of w) f(opts.cut === true);
    },
    get heldAt() {
      return heldAt;
    },
    get holding() {
      return holding;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        relay.release();
        for (const s of sockets) s.destroy();
        agent.destroy();
        server.close(() => resolve());
      }),
  };

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    stats.requests++;
    if (method === 'GET') stats.gets++;
    if (method === 'HEAD') stats.heads++;
    if (req.headers['if-none-match'] || req.headers['if-modified-since']) stats.conditional++;
    stats.requestHeaders.push(req.headers);
    const mode = { ...relay.mode };
    const upstream = httpRequest({ host: target.hostname, port: target.port, method, path: req.url, headers: endToEnd(req.rawHeaders), agent });
    upstream.on('response', async (up) => {
      stats.statuses.push(up.statusCode ?? 0);
      if (mode.holdHeaders && (await wait())) {
        res.destroy();
        up.destroy();
        return;
      }
      res.writeHead(up.statusCode ?? 502, up.statusMessage, endToEnd(up.rawHeaders));
      let sent = 0;
      let held = false;
      up.on('data', (chunk: Buffer) => {
        up.pause();
        void (async () => {
          let rest = chunk;
          if (mode.flipAt !== undefined && mode.flipAt >= sent && mode.flipAt < sent + chunk.length) {
            rest = Buffer.from(chunk);
            rest[mode.flipAt - sent] ^= 0xff;
          }
          const limit = mode.cutAfter ?? mode.holdAfter;
          if (limit !== undefined && !held && sent + rest.length > limit) {
            const head = rest.subarray(0, limit - sent);
            if (head.length) {
              stats.bodyBytes += head.length;
              sent += head.length;
              await new Promise<void>((r) => res.write(head, () => r()));
            }
            rest = rest.subarray(head.length);
            if (mode.cutAfter !== undefined) {
              res.destroy();
              up.destroy();
              return;
            }
            held = true;
            heldAt = sent;
            if (await wait()) {
              res.destroy();
              up.destroy();
              return;
            }
          }
          stats.bodyBytes += rest.length;
          sent += rest.length;
          if (rest.length) res.write(rest);
          up.resume();
        })();
      });
      up.on('end', () => res.end());
      up.on('close', () => {
        if (!up.complete) res.destroy();
      });
    });
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  relay.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return relay;
}

// ─── config ─────────────────────────────────────────────────────────────────────────────────────────

export interface CacheOpts {
  layers: Array<'memory' | 'disk' | 'redis'>;
  memoryMb?: number;
  memoryItemMb?: number;
  ttl?: number;
  diskDir?: string;
  diskMb?: number;
  diskItemMb?: number;
  redisUrl?: string;
  redisItemMb?: number;
  redisPrefix?: string;
  swr?: number;
  sie?: number;
}

export function cacheSection(o: CacheOpts): Record<string, unknown> {
  return {
    enabled: true,
    cache_layers: o.layers,
    memory: { max_cache_size_mb: o.memoryMb ?? 16, max_item_size_mb: o.memoryItemMb ?? 8, default_ttl_seconds: o.ttl ?? 3600 },
    disk: o.layers.includes('disk')
      ? { enabled: true, cache_dir: o.diskDir, max_disk_cache_size_mb: o.diskMb ?? 64, max_item_size_mb: o.diskItemMb ?? 32 }
      : { enabled: false },
    redis: o.layers.includes('redis')
      ? {
          enabled: true,
          redis_url: o.redisUrl,
          redis_key_prefix: o.redisPrefix ?? 'karasu:',
          max_item_size_mb: o.redisItemMb ?? 4,
          timeout_ms: 300,
        }
      : { enabled: false },
    stale_while_revalidate_seconds: o.swr ?? 0,
    stale_if_error_seconds: o.sie ?? 0,
  };
}

export interface BucketOpts {
  name: string;
  prefix: string;
  endpoint: string;
  bucket: string;
  cache?: Record<string, unknown>;
  s3?: Record<string, unknown>;
}

/** A whole config, fast-failing upstream settings (one attempt, no breaker surprises). */
export function cacheYaml(
  cache: CacheOpts,
  buckets: BucketOpts[],
  more: { top?: Record<string, unknown>; server?: Record<string, unknown> } = {},
): string {
  const specs: BucketSpec[] = buckets.map((b) => ({
    name: b.name,
    prefix: b.prefix,
    endpoint: b.endpoint,
    bucket: b.bucket,
    s3: { timeout: 5, connect_timeout_seconds: 1, retry: { max_attempts: 1 }, circuit_breaker: { failure_threshold: 100 }, ...b.s3 },
    extra: b.cache ? { cache: b.cache } : undefined,
  }));
  return karasuYaml({ buckets: specs, server: more.server, top: { cache: cacheSection(cache), ...more.top } });
}

export async function startCached(
  cache: CacheOpts,
  buckets: BucketOpts[],
  more: { top?: Record<string, unknown>; server?: Record<string, unknown> } = {},
): Promise<KarasuUnderTest> {
  return startKarasuYaml(cacheYaml(cache, buckets, more));
}

// ─── requests ───────────────────────────────────────────────────────────────────────────────────────

export interface CachedResponse extends HttpResponse {
  xcache: string;
  /** The `detail=` of Cache-Status (tier name on hits), or ''. */
  detail: string;
  cacheStatus: string;
}

export async function get(k: { url: string }, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<CachedResponse> {
  const res = await request(`${k.url}${path}`, { method, headers, timeoutMs: 15_000 });
  const cacheStatus = String(res.headers['cache-status'] ?? '');
  return {
    ...res,
    xcache: String(res.headers['x-cache'] ?? ''),
    detail: /detail=([a-z-]+)/.exec(cacheStatus)?.[1] ?? '',
    cacheStatus,
  };
}

/** GET that must be a complete 200 whose body hashes to `expected`. */
export async function getOk(k: { url: string }, path: string, expected: Buffer, headers: Record<string, string> = {}): Promise<CachedResponse> {
  const res = await get(k, path, headers);
  assert.equal(res.status, 200, `GET ${path}: status ${res.status} ${res.body.toString().slice(0, 200)}`);
  assert.equal(res.body.length, expected.length, `GET ${path}: length`);
  assert.equal(sha256(res.body), sha256(expected), `GET ${path}: sha256 of the body`);
  return res;
}

export function tier(k: KarasuUnderTest, name: 'memory' | 'disk' | 'redis'): TierStats & { hits: number; misses: number; available: boolean } {
  const s = k.karasu.cache!.cache.stats().tiers[name];
  assert.ok(s, `tier ${name} configured`);
  return s;
}

/** Every file under `dir` (recursively) with its size. */
export async function filesUnder(dir: string): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  let names: string[];
  try {
    names = (await readdir(dir, { recursive: true })).map(String);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    const s = await stat(p).catch(() => null);
    if (s?.isFile()) out.push({ path: p, size: s.size });
  }
  return out;
}
