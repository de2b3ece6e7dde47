import { createHash } from 'node:crypto';
import { objectHeaders } from '../http/headers.js';
import type { Logger } from '../observability/logger.js';
import type { BucketRuntime } from '../runtime/snapshot.js';
import type { UpstreamResponse } from '../upstream/replica-set.js';
import { freshnessMs, isStorable, parseCacheControl, type CachePolicy } from './policy.js';
import { Spool } from './spool.js';
import type { TieredCache } from './tiered.js';
import type { CacheHit, CacheMeta } from './types.js';

/** What a representation looks like to the responder, wherever its bytes come from. */
export interface Representation {
  headers: Record<string, string>;
  size: number;
  etag: string | null;
  lastModified: string | null;
  storable: boolean;
}

export type FillOutcome =
  /** Small body: every waiter reads the shared spool. */
  | { kind: 'spool'; rep: Representation; spool: Spool }
  /** Too large to spool in memory: the first waiter streams it (and writes it to disk); others fetch their own. */
  | { kind: 'stream'; rep: Representation; response: UpstreamResponse; meta(sha256: string): CacheMeta; claim(): boolean }
  /** S3 answered 304 to a revalidation: the stored body is still good. */
  | { kind: 'not-modified'; hit: CacheHit }
  /** S3 answered something that is not a body (404, 403, …). */
  | { kind: 'answer'; response: UpstreamResponse };

export interface FillContext {
  cache: TieredCache;
  log: Logger;
  /** In-flight fills by cache key: concurrent misses join the one already running. */
  fills: Map<string, Promise<FillOutcome>>;
}

/** Smallest spool limit, for a disk-only cache: small objects are buffered, not streamed to a file. */
const MIN_SPOOL_BYTES = 8 * 1024 * 1024;

/**
 * Joins the fill in progress for `key`, or starts one: exactly one upstream GET per key at a time.
 * A fill is independent of any one client: it is not aborted when the client that started it leaves.
 */
export function joinOrStartFill(
  fc: FillContext,
  key: string,
  objectKey: string,
  bucket: BucketRuntime,
  policy: CachePolicy,
  stale: CacheHit | null,
  timeoutMs: number,
): { outcome: Promise<FillOutcome>; joined: boolean } {
  const running = fc.fills.get(key);
  if (running) return { outcome: running, joined: true };
  const outcome = runFill(fc, key, objectKey, bucket, policy, stale, timeoutMs);
  fc.fills.set(key, outcome);
  outcome.then(
    (result) => {
      // A spool stays joinable until its body is complete and stored; everything else is done now.
      if (result.kind !== 'spool') fc.fills.delete(key);
    },
    () => fc.fills.delete(key),
  );
  return { outcome, joined: false };
}

async function runFill(
  fc: FillContext,
  key: string,
  objectKey: string,
  bucket: BucketRuntime,
  policy: CachePolicy,
  stale: CacheHit | null,
  timeoutMs: number,
): Promise<FillOutcome> {
  const controller = new AbortController();
  const response = await bucket.upstream.send(
    {
      method: 'GET',
      key: objectKey,
      ifNoneMatch: stale?.meta.etag ?? undefined,
      ifModifiedSince: stale && !stale.meta.etag ? stale.meta.lastModified ?? undefined : undefined,
      signal: controller.signal,
    },
    timeoutMs,
  );
  const now = Date.now();
  if (response.status === 304 && stale) {
    const meta = refreshed(stale.meta, response.headers, policy, now);
    void fc.cache.updateMeta(meta);
    return { kind: 'not-modified', hit: { meta, body: stale.body } };
  }
  if (response.status !== 200) {
    response.body?.destroy();
    // The object is gone (or no longer ours to read): a stale copy must not outlive it.
    if (stale && (response.status === 404 || response.status === 403)) void fc.cache.purgeKey(key);
    return { kind: 'answer', response };
  }

  const headers = objectHeaders(response.headers);
  const size = Number(response.headers['content-length']);
  const directives = parseCacheControl(headers['cache-control']);
  const rep: Representation = {
    headers,
    size,
    etag: headers.etag ?? null,
    lastModified: headers['last-modified'] ?? null,
    storable: isStorable(directives) && Number.isSafeInteger(size) && size <= policy.maxItemSize,
  };
  const meta = (sha256: string): CacheMeta => ({
    key,
    bucket: bucket.config.name,
    objectKey,
    headers,
    size,
    etag: rep.etag,
    lastModified: rep.lastModified,
    storedAt: now,
    freshUntil: now + freshnessMs(directives, headers, policy, now),
    sha256,
  });

  if (Number.isSafeInteger(size) && size <= Math.max(fc.cache.bufferLimit, MIN_SPOOL_BYTES)) {
    const spool = new Spool();
    spoolBody(fc, key, response, rep, spool, meta);
    return { kind: 'spool', rep, spool };
  }
  let claimed = false;
  // Nobody left to claim the body (every waiter went away before headers): don't hold the socket.
  setImmediate(() => {
    if (!claimed) response.body?.destroy();
  });
  return { kind: 'stream', rep, response, meta, claim: () => !claimed && (claimed = true) };
}

function spoolBody(
  fc: FillContext,
  key: string,
  response: UpstreamResponse,
  rep: Representation,
  spool: Spool,
  meta: (sha256: string) => CacheMeta,
): void {
  const body = response.body!;
  const integrity = new Integrity(rep.etag);
  body.on('data', (chunk: Buffer) => {
    integrity.update(chunk);
    spool.push(chunk);
  });
  body.once('error', (err) => {
    fc.log.warn({ err, key }, 'upstream body failed while filling the cache');
    spool.fail(err);
    fc.fills.delete(key);
  });
  body.once('end', () => {
    const problem = integrity.check(spool.received, rep.size);
    if (problem) {
      // Every client sees an error rather than a body that does not match what S3 declared.
      fc.log.warn({ key, problem }, 'upstream body failed its integrity check; not cached');
      spool.fail(new Error(problem));
      fc.fills.delete(key);
      return;
    }
    spool.finish();
    if (!rep.storable) {
      fc.fills.delete(key);
      return;
    }
    fc.cache.store(meta(integrity.sha256()), spool.body()).finally(() => fc.fills.delete(key));
  });
}

/** Byte count, SHA-256 for the tiers, and MD5 against the ETag when the ETag is an MD5. */
export class Integrity {
  private readonly sha = createHash('sha256');
  private readonly md5 = createHash('md5');
  private readonly expectedMd5: string | null;
  private shaHex: string | null = null;

  constructor(etag: string | null) {
    const bare = etag?.replace(/^W\//, '').replace(/"/g, '') ?? '';
    this.expectedMd5 = /^[0-9a-f]{32}$/i.test(bare) ? bare.toLowerCase() : null;
  }

  update(chunk: Buffer): void {
    this.sha.update(chunk);
    if (this.expectedMd5) this.md5.update(chunk);
  }

  /** A description of what is wrong, or null. */
  check(received: number, expected: number): string | null {
    if (received !== expected) return `received ${received} bytes of ${expected}`;
    if (this.expectedMd5) {
      const md5 = this.md5.digest('hex');
      if (md5 !== this.expectedMd5) return `body MD5 ${md5} does not match ETag ${this.expectedMd5}`;
    }
    return null;
  }

  get md5Expected(): string | undefined {
    return this.expectedMd5 ?? undefined;
  }

  sha256(): string {
    this.shaHex ??= this.sha.digest('hex');
    return this.shaHex;
  }
}

/** After a 304: new freshness, and any validators or caching headers S3 updated. */
function refreshed(meta: CacheMeta, s3Headers: Record<string, string>, policy: CachePolicy, now: number): CacheMeta {
  const updates = objectHeaders(s3Headers);
  const headers = { ...meta.headers };
  for (const name of ['cache-control', 'expires', 'etag', 'last-modified'] as const) {
    if (updates[name] !== undefined) headers[name] = updates[name];
  }
  const directives = parseCacheControl(headers['cache-control']);
  return {
    ...meta,
    headers,
    etag: headers.etag ?? meta.etag,
    lastModified: headers['last-modified'] ?? meta.lastModified,
    storedAt: now,
    freshUntil: now + freshnessMs(directives, headers, policy, now),
  };
}
