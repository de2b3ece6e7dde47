// One audit record per request (PRODUCT §6), serialised as one JSON line.
import type { IncomingMessage } from 'node:http';
import { trustedProxies } from '../http/client-ip.js';
import { headerText, redactUrl } from './redact.js';

export interface AuditRecord {
  /** When the response ended (ISO 8601, UTC). */
  timestamp: string;
  request_id: string;
  /** The peer, or the client named by X-Forwarded-For when the peer is in `server.trusted_proxies`. */
  client_ip: string;
  /** JWT `sub` of the caller (or of the admin), null when the request carried no verified token. */
  user: string | null;
  /** Karasu bucket name (config), null when no bucket matched. */
  bucket: string | null;
  object_key: string | null;
  method: string;
  /** Path as sent, without the query string (which may carry tokens). */
  path: string;
  /** The Range header, when the client sent one. */
  range: string | null;
  status: number;
  bytes_sent: number;
  duration_ms: number;
  /** hit, miss, stale, revalidated, bypass; null when the bucket is not cached or nothing was looked up. */
  cache_status: string | null;
  /** The tier that answered a hit (memory, disk, redis). */
  cache_tier: string | null;
  upstream_status: number | null;
  user_agent: string | null;
  referer: string | null;
  /** False when the response was cut short (client gone, upstream failure mid-body, shutdown deadline). */
  complete: boolean;
}

export interface RequestFacts {
  req: IncomingMessage;
  id: string;
  method: string;
  /** No query string. */
  path: string;
  status: number;
  bytesSent: number;
  durationMs: number;
  user: string | null;
  bucket: string | null;
  objectKey: string | null;
  /** X-Cache value (HIT, MISS, …). */
  cacheStatus: string | null;
  /** The tier a stored response came from (memory, disk, redis); null otherwise. */
  cacheTier: string | null;
  /** S3's status when this request's answer involved S3 (a fill it joined included), else null. */
  upstreamStatus: number | null;
  complete: boolean;
  trustedProxies: readonly string[];
}

/** syslog severities (RFC 5424): the audit `log_level` filters on these. */
export const SEVERITY = { error: 3, warn: 4, info: 6 } as const;

export function severityOf(status: number): number {
  return status >= 500 ? SEVERITY.error : status >= 400 ? SEVERITY.warn : SEVERITY.info;
}

/** The tier is recorded for responses served from a stored entry as such (hit, stale), not revalidations. */
const tierOf = (f: RequestFacts): string | null => (f.cacheStatus === 'HIT' || f.cacheStatus === 'STALE' ? f.cacheTier : null);

/**
 * A JSON string literal, exactly as JSON.stringify writes it. Most values (paths, keys, addresses, user
 * agents) need no escaping, and checking that is several times cheaper than JSON.stringify.
 */
function q(v: string): string {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    // Control characters, '"', '\\' and surrogates (a lone one is escaped) take the slow path.
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(v);
  }
  return `"${v}"`;
}
let isoAt = -1;
let iso = '';
/** One Date per millisecond, whatever the number of requests ending in it. */
function isoTime(now: number): string {
  if (now !== isoAt) {
    isoAt = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}
const orNull = (v: string | null): string => (v === null ? 'null' : q(v));

/**
 * `Math.round(ms * 100) / 100` as JSON would print it, from integers: V8's shortest-float printing
 * costs more than the rest of the line.
 */
export function durationText(ms: number): string {
  const hundredths = Math.round(ms * 100);
  if (!Number.isSafeInteger(hundredths) || hundredths < 0) return String(hundredths / 100);
  const whole = Math.floor(hundredths / 100);
  const fraction = hundredths - whole * 100;
  if (fraction === 0) return `${whole}`;
  if (fraction % 10 === 0) return `${whole}.${fraction / 10}`;
  return `${whole}.${fraction < 10 ? '0' : ''}${fraction}`;
}

const LOWER_CACHE_STATUS: Record<string, string> = { HIT: '"hit"', MISS: '"miss"', STALE: '"stale"', REVALIDATED: '"revalidated"', BYPASS: '"bypass"' };
const cacheStatusJson = (status: string | null): string => (status === null ? 'null' : (LOWER_CACHE_STATUS[status] ?? q(status.toLowerCase())));

/**
 * The peer address, read once per connection: `socket.remoteAddress` is a getter that goes through the
 * handle each time, and a keep-alive connection carries many requests.
 */
const PEER = Symbol('karasu.peer');
type PeerSocket = { remoteAddress?: string; [PEER]?: string };
function peerAddress(socket: PeerSocket | undefined): string | undefined {
  if (socket === undefined) return undefined;
  let peer = socket[PEER];
  if (peer === undefined) {
    peer = socket.remoteAddress;
    // Unknown until connected; not remembered then.
    if (peer !== undefined) socket[PEER] = peer;
  }
  return peer;
}

/**
 * The line from client_ip to duration_ms, as last built: consecutive requests mostly repeat the client,
 * user, object, status and size, so it is rebuilt only when one of them changes (comparing a dozen values
 * costs less than escaping and joining them again).
 */
const middle = {
  clientIp: '' as string,
  user: null as string | null,
  bucket: null as string | null,
  objectKey: null as string | null,
  method: '',
  path: '',
  range: null as string | null,
  status: -1,
  bytes: -1,
  json: '',
  /** `json` encoded, when the file output asked for it since `json` last changed. */
  encoded: null as Buffer | null,
};

function middleJson(clientIp: string, user: string | null, bucket: string | null, objectKey: string | null, method: string, path: string, range: string | null, status: number, bytes: number): string {
  const m = middle;
  if (
    m.status !== status ||
    m.bytes !== bytes ||
    m.path !== path ||
    m.objectKey !== objectKey ||
    m.bucket !== bucket ||
    m.method !== method ||
    m.clientIp !== clientIp ||
    m.user !== user ||
    m.range !== range ||
    m.json === ''
  ) {
    m.clientIp = clientIp;
    m.user = user;
    m.bucket = bucket;
    m.objectKey = objectKey;
    m.method = method;
    m.path = path;
    m.range = range;
    m.status = status;
    m.bytes = bytes;
    m.encoded = null;
    m.json =
      `,"client_ip":${q(clientIp)},"user":${orNull(user)},"bucket":${orNull(bucket)},"object_key":${orNull(objectKey)}` +
      `,"method":${q(method)},"path":${q(path)},"range":${orNull(range)},"status":${status},"bytes_sent":${bytes},"duration_ms":`;
  }
  return m.json;
}

/** The line after duration_ms, as last built (the same reasoning as `middle`). */
const tail = {
  cacheStatus: null as string | null,
  tier: null as string | null,
  upstream: null as number | null,
  userAgent: null as string | null,
  referer: null as string | null,
  complete: false,
  json: '',
  encoded: null as Buffer | null,
};

function tailJson(cacheStatus: string | null, tier: string | null, upstream: number | null, userAgent: string | null, referer: string | null, complete: boolean): string {
  const t = tail;
  if (
    t.cacheStatus !== cacheStatus ||
    t.tier !== tier ||
    t.upstream !== upstream ||
    t.complete !== complete ||
    t.userAgent !== userAgent ||
    t.referer !== referer ||
    t.json === ''
  ) {
    t.cacheStatus = cacheStatus;
    t.tier = tier;
    t.upstream = upstream;
    t.userAgent = userAgent;
    t.referer = referer;
    t.complete = complete;
    t.encoded = null;
    t.json =
      `,"cache_status":${cacheStatusJson(cacheStatus)},"cache_tier":${orNull(tier)},"upstream_status":${upstream === null ? 'null' : upstream}` +
      `,"user_agent":${orNull(userAgent)},"referer":${referer === null ? 'null' : q(redactUrl(referer))},"complete":${complete}}\n`;
  }
  return t.json;
}

/** Brings `middle` and `tail` up to date with `f`. A line is `{"timestamp":"…","request_id":…` + middle + duration + tail. */
function updateParts(f: RequestFacts): void {
  const headers = f.req.headers;
  const referer = headers.referer ?? headers.referrer;
  const clientIp = trustedProxies(f.trustedProxies).clientIp(peerAddress(f.req.socket as PeerSocket | undefined), headers['x-forwarded-for']);
  middleJson(clientIp, f.user, f.bucket, f.objectKey, f.method, f.path, headerText(headers.range), f.status, f.bytesSent);
  tailJson(f.cacheStatus, tierOf(f), f.upstreamStatus, headerText(headers['user-agent']), typeof referer === 'string' ? referer : null, f.complete);
}

/**
 * The record as one JSON line, written out field by field: the same text as
 * `JSON.stringify(buildRecord(f, now))`, without building the object first (the log phase is hot).
 */
export function recordLine(f: RequestFacts, now = Date.now()): string {
  updateParts(f);
  return `{"timestamp":"${isoTime(now)}","request_id":${q(f.id)}` + middle.json + durationText(f.durationMs) + tail.json;
}

const TIMESTAMP_KEY = Buffer.from('{"timestamp":"');
const REQUEST_ID_KEY = Buffer.from('","request_id":"');

/**
 * Writes `s` as ASCII bytes at `at` when every character is printable ASCII that JSON does not escape;
 * returns false (having written a prefix, to be overwritten) otherwise.
 */
function writePlainAscii(out: Buffer, at: number, s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
    out[at + i] = c;
  }
  return true;
}

/**
 * `recordLine(f, now)` encoded as UTF-8 straight into `out` at `at`, for the file output: the parts that
 * repeat from request to request (see `middle`, `tail`) are copied as bytes encoded once, the ones that
 * change (timestamp, request id, duration) are ASCII. Returns the offset after the line, or -1 when it
 * does not fit (nothing of it then counts as written).
 */
export function encodeLine(f: RequestFacts, now: number, out: Buffer, at: number): number {
  updateParts(f);
  const m = (middle.encoded ??= Buffer.from(middle.json));
  const t = (tail.encoded ??= Buffer.from(tail.json));
  const time = isoTime(now);
  const id = f.id;
  const duration = durationText(f.durationMs);
  const size = TIMESTAMP_KEY.length + time.length + REQUEST_ID_KEY.length + id.length + 1 + m.length + duration.length + t.length;
  if (at + size > out.length) return -1;
  out.set(TIMESTAMP_KEY, at);
  at += TIMESTAMP_KEY.length;
  writePlainAscii(out, at, time);
  at += time.length;
  out.set(REQUEST_ID_KEY, at);
  at += REQUEST_ID_KEY.length;
  if (!writePlainAscii(out, at, id)) {
    // An id that needs escaping: the generic path (the id is checked at the edge, so this is rare).
    const line = recordLine(f, now);
    const start = at - REQUEST_ID_KEY.length - time.length - TIMESTAMP_KEY.length;
    return Buffer.byteLength(line) <= out.length - start ? start + out.write(line, start) : -1;
  }
  at += id.length;
  out[at++] = 0x22;
  out.set(m, at);
  at += m.length;
  writePlainAscii(out, at, duration);
  at += duration.length;
  out.set(t, at);
  return at + t.length;
}

export function buildRecord(f: RequestFacts, now = Date.now()): AuditRecord {
  const headers = f.req.headers;
  const referer = headers.referer ?? headers.referrer;
  return {
    timestamp: new Date(now).toISOString(),
    request_id: f.id,
    client_ip: trustedProxies(f.trustedProxies).clientIp(f.req.socket?.remoteAddress, headers['x-forwarded-for']),
    user: f.user,
    bucket: f.bucket,
    object_key: f.objectKey,
    method: f.method,
    path: f.path,
    range: headerText(headers.range),
    status: f.status,
    bytes_sent: f.bytesSent,
    duration_ms: Math.round(f.durationMs * 100) / 100,
    cache_status: f.cacheStatus === null ? null : f.cacheStatus.toLowerCase(),
    cache_tier: tierOf(f),
    upstream_status: f.upstreamStatus,
    user_agent: headerText(headers['user-agent']),
    referer: typeof referer === 'string' ? redactUrl(referer) : null,
    complete: f.complete,
  };
}
