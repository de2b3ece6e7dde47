import { HttpError } from '../http/errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { serveFromUpstream, upstreamError } from '../respond/from-upstream.js';
import { serveRepresentation, type BodySource } from '../respond/representation.js';
import { joinOrStartFill, type FillContext, type FillOutcome, type Representation } from './fill.js';
import type { CachePolicy } from './policy.js';
import type { CachedBody, CacheHit } from './types.js';
import type { TierLookup } from './tiered.js';
import { cacheKey } from './types.js';

/**
 * The cache phase. Runs after authentication, so a stored object is only ever served to a caller who
 * passed it. Fresh hit → served from the tier; stale → served while one background refresh runs
 * (stale-while-revalidate) or revalidated first; miss → one coalesced upstream GET whose bytes reach
 * every waiting client as they arrive.
 */
export function serveWithCache(ctx: RequestContext, fc: FillContext, policy: CachePolicy): void | Promise<void> {
  const key = cacheKey(ctx.bucket!.config.name, ctx.key);
  const found = fc.cache.lookup(key);
  // A memory-tier hit answers without a single await.
  if (found instanceof Promise) return found.then((lookup) => serveLookup(ctx, fc, policy, key, lookup));
  return serveLookup(ctx, fc, policy, key, found);
}

function serveLookup(ctx: RequestContext, fc: FillContext, policy: CachePolicy, key: string, found: TierLookup | null): void | Promise<void> {
  if (found) {
    const { meta } = found.hit;
    const now = Date.now();
    const stats = fc.cache.bucketStats(ctx.bucket!.config.name);
    if (meta.freshUntil > now) {
      stats.hits++;
      ctx.cacheTier = found.tier.name;
      return serveStored(ctx, found.hit, 'HIT', `karasu; hit; ttl=${Math.floor((meta.freshUntil - now) / 1000)}; detail=${found.tier.name}`);
    }
    if (now < meta.freshUntil + policy.staleWhileRevalidateMs) {
      stats.stale++;
      const timeoutMs = ctx.snapshot.config.server.request_timeout * 1000;
      const { outcome } = joinOrStartFill(fc, { key, objectKey: ctx.key, bucket: ctx.bucket!, policy, stale: found.hit, timeoutMs });
      outcome.catch((err) => fc.log.warn({ err, key }, 'background revalidation failed'));
      ctx.cacheTier = found.tier.name;
      return serveStored(ctx, found.hit, 'STALE', `karasu; hit; ttl=${-Math.ceil((now - meta.freshUntil) / 1000)}; detail=${found.tier.name}`);
    }
  }
  return fillOrForward(ctx, fc, policy, key, found);
}

/** A miss, or a stale entry that must be revalidated first: one coalesced upstream request. */
async function fillOrForward(ctx: RequestContext, fc: FillContext, policy: CachePolicy, key: string, found: TierLookup | null): Promise<void> {
  const bucket = ctx.bucket!;
  const stats = fc.cache.bucketStats(bucket.config.name);
  const now = Date.now();
  const timeoutMs = ctx.snapshot.config.server.request_timeout * 1000;
  const ranged = ctx.method === 'GET' && ctx.req.headers.range !== undefined;
  if (!found && (ctx.method === 'HEAD' || (ranged && !fc.fills.has(key)))) {
    // A HEAD or a Range miss moves what was asked for, not the whole object.
    stats.misses++;
    markCache(ctx, 'MISS', 'karasu; fwd=uri-miss');
    return serveFromUpstream(ctx);
  }

  const { outcome, joined } = joinOrStartFill(fc, { key, objectKey: ctx.key, bucket, policy, stale: found?.hit ?? null, timeoutMs });
  let result: FillOutcome;
  try {
    result = await outcome;
  } catch (err) {
    if (found && err instanceof HttpError && err.status >= 500 && now < found.hit.meta.freshUntil + policy.staleIfErrorMs) {
      stats.stale++;
      ctx.cacheTier = found.tier.name;
      ctx.upstreamStatus = err.status;
      return serveStored(ctx, found.hit, 'STALE', `karasu; hit; detail=${found.tier.name}; fwd=stale; fwd-status=${err.status}`);
    }
    throw err;
  }
  const collapsed = joined ? '; collapsed' : '';
  switch (result.kind) {
    case 'not-modified':
      stats.revalidated++;
      ctx.upstreamStatus = 304;
      return serveStored(ctx, result.hit, 'REVALIDATED', `karasu; fwd=stale; fwd-status=304${collapsed}`);
    case 'answer':
      stats.misses++;
      markCache(ctx, 'MISS', `karasu; fwd=uri-miss; fwd-status=${result.response.status}${collapsed}`);
      ctx.upstreamStatus = result.response.status;
      return upstreamError(ctx, result.response);
    case 'spool': {
      countFill(stats, result.rep, joined);
      markFill(ctx, result.rep, collapsed);
      ctx.upstreamStatus = 200;
      const { spool } = result;
      return serveRepresentation(ctx, result.rep, {
        open: (range) => spool.reader(range?.start, range?.end),
        discard: () => {},
      });
    }
    case 'stream': {
      if (ranged || !result.claim()) {
        // Not cacheable and too large to share from memory: this client gets its own upstream request.
        stats.misses++;
        markCache(ctx, 'MISS', 'karasu; fwd=uri-miss');
        return serveFromUpstream(ctx);
      }
      countFill(stats, result.rep, false);
      markFill(ctx, result.rep, '');
      ctx.upstreamStatus = result.response.status;
      ctx.replica = result.response.replica;
      const body = result.response.body!;
      return serveRepresentation(ctx, result.rep, { open: () => body, discard: () => body.destroy() });
    }
  }
}

function serveStored(ctx: RequestContext, hit: CacheHit, status: string, cacheStatus: string): void | Promise<void> {
  markCache(ctx, status, cacheStatus);
  const { meta, body } = hit;
  const age = String(Math.max(0, Math.floor((Date.now() - meta.storedAt) / 1000)));
  return serveRepresentation(ctx, meta, body.kind === 'buffer' ? bufferSource(body.data) : fileSource(body), age);
}

const ignore = (): void => {};

function bufferSource(data: Buffer): BodySource {
  return { open: (range) => (range ? data.subarray(range.start, range.end + 1) : data), discard: ignore };
}

function fileSource(body: Extract<CachedBody, { kind: 'file' }>): BodySource {
  return { open: (range) => body.open(range), discard: ignore };
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
