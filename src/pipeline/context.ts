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
  /** Filled by the responder for logs, metrics and the audit log. */
  /** X-Cache value (HIT, MISS, STALE, REVALIDATED, BYPASS); null when the bucket has no cache. */
  cacheStatus: string | null;
  /** RFC 9211 Cache-Status value. */
  cacheStatusHeader: string | null;
  upstreamStatus: number | null;
  replica: string | null;
  bytesSent: number;
  /** Fires when the client goes away before the response is complete. */
  readonly aborted: AbortSignal;
}

export function createContext(req: IncomingMessage, res: ServerResponse, id: string, snapshot: Snapshot): RequestContext {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
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
    cacheStatus: null,
    cacheStatusHeader: null,
    upstreamStatus: null,
    replica: null,
    bytesSent: 0,
    aborted: controller.signal,
  };
}
