import { Transform, type Readable } from 'node:stream';
import { HttpError } from '../http/errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { serveFromUpstream, upstreamError } from '../respond/from-upstream.js';
import { serveRepresentation, type BodySource } from '../respond/representation.js';
import { Integrity, joinOrStartFill, type FillContext, type FillOutcome, type Representation } from './fill.js';
import type { CachePolicy } from './policy.js';
import { verifyingReadStream } from './tiers/disk.js';
import type { CacheHit, CacheMeta, CacheTier } from './types.js';
import { cacheKey } from './types.js';

/**
 * The cache phase. Runs after authentication, so a stored object is only ever served to a caller who
 * passed it. Fresh hit → served from the tier; stale → served while one background refresh runs
 * (stale-while-revalidate) or revalidated first; miss → one coalesced upstream GET whose bytes reach
 * every waiting client as they arrive.
 */
export async function serveWithCache(ctx: RequestContext, fc: FillContext, policy: CachePolicy): Promise<void> {
  const bucket = ctx.bucket!;
  const stats = fc.cache.bucketStats(bucket.config.name);
  const key = cacheKey(bucket.config.name, ctx.key);
  const found = await fc.cache.lookup(key);
  const now = Date.now();
  const timeoutMs = ctx.snapshot.config.server.request_timeout * 1000;

  if (found) {
    const { meta } = found.hit;
    if (meta.freshUntil > now) {
      stats.hits++;
      return serveStored(ctx, found, 'HIT', `karasu; hit; ttl=${Math.floor((meta.freshUntil - now) / 1000)}; detail=${found.tier.name}`, stats);
    }
    if (now < meta.freshUntil + policy.staleWhileRevalidateMs) {
      stats.stale++;
      const { outcome } = joinOrStartFill(fc, key, ctx.key, bucket, policy, found.hit, timeoutMs);
      outcome.catch((err) => fc.log.warn({ err, key }, 'background revalidation failed'));
      return serveStored(ctx, found, 'STALE', `karasu; hit; ttl=${-Math.ceil((now - meta.freshUntil) / 1000)}; detail=${found.tier.name}`, stats);
    }
  }

  const ranged = ctx.method === 'GET' && ctx.req.headers.range !== undefined;
  if (!found && (ctx.method === 'HEAD' || (ranged && !fc.fills.has(key)))) {
    // A HEAD or a Range miss moves what was asked for, not the whole object.
    stats.misses++;
    markCache(ctx, 'MISS', 'karasu; fwd=uri-miss');
    return serveFromUpstream(ctx);
  }

  const { outcome, joined } = joinOrStartFill(fc, key, ctx.key, bucket, policy, found?.hit ?? null, timeoutMs);
  let result: FillOutcome;
  try {
    result = await outcome;
  } catch (err) {
    if (found && err instanceof HttpError && err.status >= 500 && now < found.hit.meta.freshUntil + policy.staleIfErrorMs) {
      stats.stale++;
      return serveStored(ctx, found, 'STALE', `karasu; hit; detail=${found.tier.name}; fwd=stale; fwd-status=${err.status}`, stats);
    }
    throw err;
  }
  const collapsed = joined ? '; collapsed' : '';
  switch (result.kind) {
    case 'not-modified':
      stats.revalidated++;
      return serveStored(ctx, { hit: result.hit, tier: found?.tier ?? null }, 'REVALIDATED', `karasu; fwd=stale; fwd-status=304${collapsed}`, stats);
    case 'answer':
      stats.misses++;
      markCache(ctx, 'MISS', `karasu; fwd=uri-miss; fwd-status=${result.response.status}${collapsed}`);
      ctx.upstreamStatus = result.response.status;
      return upstreamError(ctx, result.response);
    case 'spool': {
      countFill(stats, result.rep, joined);
      markFill(ctx, result.rep, collapsed);
      const { spool } = result;
      return serveRepresentation(ctx, result.rep, {
        open: (range) => spool.reader(range?.start, range?.end),
        discard: () => {},
      });
    }
    case 'stream':
      if (ranged || !result.claim()) {
        // Too large to share from memory: this client gets its own upstream request.
        stats.misses++;
        markCache(ctx, 'MISS', 'karasu; fwd=uri-miss');
        return serveFromUpstream(ctx);
      }
      countFill(stats, result.rep, false);
      markFill(ctx, result.rep, '');
      ctx.upstreamStatus = result.response.status;
      ctx.replica = result.response.replica;
      return serveRepresentation(ctx, result.rep, streamToDisk(fc, key, result.rep, result.response.body!, result.meta));
  }
}

function serveStored(
  ctx: RequestContext,
  found: { hit: CacheHit; tier: CacheTier | null },
  status: string,
  cacheStatus: string,
  stats: { bytes_from_cache: number },
): Promise<void> {
  markCache(ctx, status, cacheStatus);
  const { meta, body } = found.hit;
  stats.bytes_from_cache += meta.size;
  const age = String(Math.max(0, Math.floor((Date.now() - meta.storedAt) / 1000)));
  const source: BodySource =
    body.kind === 'buffer'
      ? { open: (range) => (range ? body.data.subarray(range.start, range.end + 1) : body.data), discard: () => {} }
      : {
          // A whole-file read is verified as it streams; a corrupt file errors the response and is dropped.
          open: (range) => verifyingReadStream(body.path, meta, range, () => void found.tier?.delete(meta.key)),
          discard: () => {},
        };
  return serveRepresentation(ctx, meta, source, { age });
}

function markCache(ctx: RequestContext, status: string, header: string): void {
  ctx.cacheStatus = status;
  ctx.cacheStatusHeader = header;
}

function markFill(ctx: RequestContext, rep: Representation, collapsed: string): void {
  if (rep.storable) markCache(ctx, 'MISS', `karasu; fwd=uri-miss; fwd-status=200; stored${collapsed}`);
  else markCache(ctx, 'BYPASS', `karasu; fwd=uri-miss; fwd-status=200${collapsed}; detail=uncacheable`);
}

function countFill(stats: { misses: number; bypass: number; bytes_from_s3: number }, rep: Representation, joined: boolean): void {
  if (rep.storable) stats.misses++;
  else stats.bypass++;
  if (!joined) stats.bytes_from_s3 += rep.size;
}

/**
 * A body too large for memory streams to its one client and, when a tier takes it, into a file at the
 * same time; the file is committed only if every byte arrived and matched (see TierWriter.commit).
 */
function streamToDisk(fc: FillContext, key: string, rep: Representation, body: Readable, meta: (sha256: string) => CacheMeta): BodySource {
  const writer = rep.storable ? fc.cache.streamingWriter(key, rep.size) : null;
  if (!writer) return { open: () => body, discard: () => body.destroy() };
  const integrity = new Integrity(rep.etag);
  let received = 0;
  let committed = false;
  const tee = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      integrity.update(chunk);
      received += chunk.length;
      writer.write(chunk).then(
        () => done(null, chunk),
        (err: Error) => done(err),
      );
    },
    flush(done) {
      committed = true;
      const problem = integrity.check(received, rep.size);
      if (problem) {
        writer.abort();
        fc.log.warn({ key, problem }, 'upstream body failed its integrity check; not cached');
        done(new Error(problem));
        return;
      }
      void writer.commit(meta(integrity.sha256()), integrity.md5Expected);
      done();
    },
    destroy(err, done) {
      if (!committed) writer.abort();
      done(err);
    },
  });
  return {
    open: () => {
      // pipe() does not pass errors on: a failing upstream must fail the client's response too.
      body.once('error', (err) => tee.destroy(err));
      return body.pipe(tee);
    },
    discard: () => {
      writer.abort();
      body.destroy();
    },
  };
}
