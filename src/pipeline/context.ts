import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BucketRuntime, Snapshot } from '../runtime/snapshot.js';

/** What one request carries through the phases; one plain object, allocated once per request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly id: string;
  readonly startedAt: number;
  readonly snapshot: Snapshot;
  readonly method: string;
  /** Raw path (no query), as the client sent it. */
  readonly pathname: string;
  bucket: BucketRuntime | null;
  key: string;
  /** The caller's JWT `sub` once authenticated (null: public bucket, or no `sub`); for the audit log. */
  user: string | null;
  /** Filled by the responder for logs, metrics and the audit log. */
  /** X-Cache value (HIT, MISS, STALE, REVALIDATED, BYPASS); null when the bucket has no cache. */
  cacheStatus: string | null;
  /** RFC 9211 Cache-Status value. */
  cacheStatusHeader: string | null;
  /** The tier a stored response came from (memory, disk, redis). */
  cacheTier: string | null;
  upstreamStatus: number | null;
  replica: string | null;
  bytesSent: number;
  /** Created on first use (see clientGone): a cache hit never needs one. */
  abortSignal: AbortSignal | null;
}

/** A signal that fires when the client goes away before its response is complete. */
export function clientGone(ctx: RequestContext): AbortSignal {
  if (ctx.abortSignal) return ctx.abortSignal;
  const controller = new AbortController();
  const { res } = ctx;
  if (res.destroyed && !res.writableFinished) controller.abort();
  else {
    res.once('close', () => {
      if (!res.writableFinished) controller.abort();
    });
  }
  return (ctx.abortSignal = controller.signal);
}

export function createContext(req: IncomingMessage, res: ServerResponse, id: string, snapshot: Snapshot): RequestContext {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return {
    req,
    res,
    id,
    startedAt: performance.now(),
    snapshot,
    method: req.method ?? 'GET',
    pathname: q === -1 ? url : url.slice(0, q),
    bucket: null,
    key: '',
    user: null,
    cacheStatus: null,
    cacheStatusHeader: null,
    cacheTier: null,
    upstreamStatus: null,
    replica: null,
    bytesSent: 0,
    abortSignal: null,
  };
}
