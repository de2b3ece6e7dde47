import { createHash } from 'node:crypto';
import { objectHeaders } from '../http/headers.js';
import type { Logger } from '../observability/logger.js';
import type { BucketRuntime } from '../runtime/snapshot.js';
import type { UpstreamResponse } from '../upstream/replica-set.js';
import { freshnessMs, isStorable, parseCacheControl, type CachePolicy } from './policy.js';
import { FileSpool, Spool } from './spool.js';
import type { TieredCache } from './tiered.js';
import type { CacheHit, CacheMeta, TierWriter } from './types.js';

/** Bytes of a large body that may be written to the disk tier's file but not yet landed. */
const FILE_WRITE_WINDOW = 1024 * 1024;

/** What a representation looks like to the responder, wherever its bytes come from. */
export interface Representation {
  headers: Record<string, string>;
  size: number;
  etag: string | null;
  lastModified: string | null;
  storable: boolean;
}

export type FillOutcome =
  /** Every waiter reads the shared spool: in memory for small bodies, the disk tier's file for large ones. */
  | { kind: 'spool'; rep: Representation; spool: Spool | FileSpool }
  /** Not cacheable and too large to hold: the first waiter streams it; the others fetch their own. */
  | { kind: 'stream'; rep: Representation; response: UpstreamResponse; claim(): boolean }
  /** S3 answered 304 to a revalidation: the stored body is still good. */
  | { kind: 'not-modified'; hit: CacheHit }
  /** S3 answered something that is not a body (404, 403, …). */
  | { kind: 'answer'; response: UpstreamResponse };

export interface FillContext {
  cache: TieredCache;
  log: Logger;
  /** In-flight fills by cache key: concurrent misses join the one already running. */
  fills: Map<string, Promise<FillOutcome>>;
  /** `server.coalescing.enabled` of the current snapshot. */
  coalesce(): boolean;
}

/** One object to fetch into the cache. */
export interface FillRequest {
  /** Cache key (`bucket:objectKey`). */
  key: string;
  objectKey: string;
  bucket: BucketRuntime;
  policy: CachePolicy;
  /** The expired entry being revalidated, if any. */
  stale: CacheHit | null;
  timeoutMs: number;
}

/** A fill belongs to no client, so nothing aborts it (its own timeouts still apply). */
const NO_CLIENT = new AbortController().signal;

/** Smallest spool limit, for a disk-only cache: small objects are buffered, not streamed to a file. */
const MIN_SPOOL_BYTES = 8 * 1024 * 1024;

/**
 * Joins the fill in progress for `key`, or starts one: exactly one upstream GET per key at a time.
 * A fill is independent of any one client: it is not aborted when the client that started it leaves.
 */
export function joinOrStartFill(fc: FillContext, request: FillRequest): { outcome: Promise<FillOutcome>; joined: boolean } {
  const { key } = request;
  const coalesce = fc.coalesce();
  const running = coalesce ? fc.fills.get(key) : undefined;
  if (running) return { outcome: running, joined: true };
  // A spool stays joinable until its body is complete and stored; then the entry takes over.
  const outcome: Promise<FillOutcome> = runFill(fc, request, () => forget(fc, key, outcome));
  if (!coalesce) return { outcome, joined: false };
  fc.fills.set(key, outcome);
  outcome.then(
    (result) => {
      if (result.kind !== 'spool') forget(fc, key, outcome);
    },
    () => forget(fc, key, outcome),
  );
  return { outcome, joined: false };
}

function forget(fc: FillContext, key: string, outcome: Promise<FillOutcome>): void {
  if (fc.fills.get(key) === outcome) fc.fills.delete(key);
}

async function runFill(fc: FillContext, request: FillRequest, spoolDone: () => void): Promise<FillOutcome> {
  const { key, objectKey, bucket, policy, stale } = request;
  // Captured before the request: a purge while it is under way means its body must not be stored.
  const epoch = fc.cache.epoch;
  const response = await bucket.upstream.send(
    {
      method: 'GET',
      key: objectKey,
      ifNoneMatch: stale?.meta.etag ?? undefined,
      ifModifiedSince: stale && !stale.meta.etag ? stale.meta.lastModified ?? undefined : undefined,
      signal: NO_CLIENT,
    },
    request.timeoutMs,
  );
  const now = Date.now();
  if (response.status === 304 && stale) {
    const meta = refreshed(stale.meta, response.headers, policy, now);
    // Awaited (once per TTL): the next request must find the entry fresh in every tier, Redis included.
    await fc.cache.updateMeta(meta);
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
    const spool = new Spool(size);
    spoolBody(fc, key, response, rep, spool, (sha256) => fc.cache.store(meta(sha256), spool.body(), epoch), spoolDone);
    return { kind: 'spool', rep, spool };
  }
  const writer = rep.storable ? fc.cache.streamingWriter(key, size) : null;
  if (writer) {
    const spool = new FileSpool(writer, size);
    void fileSpoolBody(fc, key, response, rep, spool, (sha256, md5) => fc.cache.commit(writer, meta(sha256), md5, epoch), writer, spoolDone);
    return { kind: 'spool', rep, spool };
  }
  let claimed = false;
  // Nobody left to claim the body (every waiter went away before headers): don't hold the socket.
  setImmediate(() => {
    if (!claimed) response.body?.destroy();
  });
  return { kind: 'stream', rep, response, claim: () => !claimed && (claimed = true) };
}

function spoolBody(
  fc: FillContext,
  key: string,
  response: UpstreamResponse,
  rep: Representation,
  spool: Spool,
  store: (sha256: string) => Promise<void>,
  done: () => void,
): void {
  const body = response.body!;
  const integrity = new Integrity(rep.etag);
  body.on('data', (chunk: Buffer) => {
    // Waiting readers get the chunk first, hashing (~0.2 ms per 64 KiB for SHA-256 and MD5) comes after:
    // the spool withholds the body's last byte until the check at the end, so nothing unverified completes.
    spool.push(chunk);
    integrity.update(chunk);
  });
  body.once('error', (err) => {
    fc.log.warn({ err, key }, 'upstream body failed while filling the cache');
    spool.fail(err);
    done();
  });
  body.once('end', () => {
    const problem = integrity.check(spool.received, rep.size);
    if (problem) {
      // Every client sees an error rather than a body that does not match what S3 declared.
      fc.log.warn({ key, problem }, 'upstream body failed its integrity check; not cached');
      spool.fail(new Error(problem));
      done();
      return;
    }
    spool.finish();
    if (!rep.storable) {
      done();
      return;
    }
    store(integrity.sha256()).finally(done);
  });
}

/** Large body: written to the disk tier's file as fast as the disk takes it, committed when it checks out. */
async function fileSpoolBody(
  fc: FillContext,
  key: string,
  response: UpstreamResponse,
  rep: Representation,
  spool: FileSpool,
  commit: (sha256: string, md5: string | undefined) => Promise<boolean>,
  writer: TierWriter,
  done: () => void,
): Promise<void> {
  // The disk writer hashes every byte it writes; its digests serve the integrity check too.
  const integrity = new Integrity(rep.etag);
  // Writes land in order; up to FILE_WRITE_WINDOW bytes may be on their way to the file while the
  // next chunks are read, instead of one disk round trip per chunk.
  let unlanded = 0;
  let lastWrite: Promise<void> = Promise.resolve();
  try {
    for await (const chunk of response.body! as AsyncIterable<Buffer>) {
      unlanded += chunk.length;
      lastWrite = spool.write(chunk).then(() => {
        unlanded -= chunk.length;
      });
      if (unlanded >= FILE_WRITE_WINDOW) await lastWrite;
    }
    await lastWrite;
    const digests = writer.digests();
    const problem = integrity.check(spool.received, rep.size, digests.md5);
    if (problem) throw new Error(problem);
    spool.finish();
    if (!(await commit(digests.sha256, integrity.md5Expected))) {
      fc.log.info({ key }, 'completed body not committed (refused by the disk tier, or purged meanwhile)');
    }
  } catch (err) {
    await lastWrite.catch(() => {});
    writer.abort();
    fc.log.warn({ err, key }, 'upstream body failed while filling the cache; not cached');
    spool.fail(err as Error);
  } finally {
    done();
    spool.seal();
  }
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

  /** A description of what is wrong, or null. `md5`: the body's MD5 when it was hashed elsewhere. */
  check(received: number, expected: number, md5Hex?: string): string | null {
    if (received !== expected) return `received ${received} bytes of ${expected}`;
    if (this.expectedMd5) {
      const md5 = md5Hex ?? this.md5.digest('hex');
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
