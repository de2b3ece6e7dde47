import type { AuthOutcome } from '../auth/bucket.js';
import { serveWithCache } from '../cache/serve.js';
import type { FillContext } from '../cache/fill.js';
import { HttpError, methodNotAllowed } from '../http/errors.js';
import { sendError, sendHead, toHttpError } from '../respond/respond.js';
import { serveFromUpstream } from '../respond/from-upstream.js';
import type { RequestContext } from './context.js';

/**
 * The request path, phase by phase (PRODUCT §2):
 *   route → protect → authenticate → cache lookup → upstream → respond → log
 * Size limits and the concurrency cap run before this, for every request (see server/app.ts);
 * logging, metrics and the audit line run when the response ends (see pipeline/log.ts).
 */
export function proxy(ctx: RequestContext, cache: FillContext | null): void | Promise<void> {
  try {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD' && ctx.method !== 'OPTIONS') throw methodNotAllowed();
    route(ctx);
    if (ctx.method === 'OPTIONS') return preflight(ctx);
    const auth = ctx.bucket!.auth;
    if (auth) {
      const outcome = auth.authenticate(ctx.req);
      if (outcome instanceof Promise) {
        return outcome.then((verdict) => {
          authenticated(ctx, verdict);
          return serve(ctx, cache);
        }).catch((err: unknown) => failed(ctx, err));
      }
      authenticated(ctx, outcome);
    }
    // A memory-tier hit is answered synchronously: no promise unless something has to wait.
    const serving = serve(ctx, cache);
    return serving && serving.catch((err: unknown) => failed(ctx, err));
  } catch (err) {
    return failed(ctx, err);
  }
}

/** After authentication, so a cached object is never served to a caller who could not fetch it. */
function serve(ctx: RequestContext, cache: FillContext | null): void | Promise<void> {
  const policy = ctx.bucket!.cachePolicy;
  if (cache && policy) return serveWithCache(ctx, cache, policy);
  if (cache) {
    ctx.cacheStatus = 'BYPASS';
    ctx.cacheStatusHeader = 'karasu; fwd=bypass; detail=bucket-not-cached';
  }
  return serveFromUpstream(ctx);
}

/** Answers an error; an unexpected one (a bug, not an HttpError) is also passed on to be logged. */
function failed(ctx: RequestContext, err: unknown): void | Promise<void> {
  if (ctx.res.destroyed && !ctx.res.writableFinished) return; // the client left; nobody to answer
  sendError(ctx, toHttpError(err));
  if (!(err instanceof HttpError)) return Promise.reject(err);
}

function route(ctx: RequestContext): void {
  const { target, key } = ctx.snapshot.router.match(ctx.pathname);
  ctx.bucket = target;
  ctx.key = key;
}

/**
 * Applies the bucket's JWT verdict (src/auth/): a refused caller gets 401/403 (503 while the keys are not
 * loaded) and never reaches the cache. A verified token is remembered until it expires, so a cache hit
 * costs a map lookup here, not a signature check.
 */
function authenticated(ctx: RequestContext, outcome: AuthOutcome): void {
  if (!outcome.ok) throw outcome.error;
  ctx.user = outcome.token.sub;
}

function preflight(ctx: RequestContext): void {
  const cors = ctx.bucket!.cors;
  const headers: Record<string, string> = { allow: 'GET, HEAD, OPTIONS', 'content-length': '0' };
  if (cors && cors.allowOrigin(ctx.req.headers.origin)) Object.assign(headers, cors.preflightHeaders);
  sendHead(ctx, 204, headers);
}
