import type { ServerResponse } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import { errorBody, HttpError } from '../http/errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { UpstreamBody } from '../upstream/body.js';

/**
 * A response's own headers as a flat list, with the `private` rewrite for token-protected buckets: such
 * an object must not be stored by a shared cache (a CDN) in front of Karasu and served to callers who
 * never showed a token; only the caller's own browser cache may keep it.
 */
export function headerList(headers: Record<string, string>, privateCache: boolean): string[] {
  const list: string[] = [];
  for (const name in headers) {
    if (privateCache && name === 'cache-control') continue;
    list.push(name, headers[name]);
  }
  if (privateCache) {
    const cacheControl = headers['cache-control'];
    list.push('cache-control', cacheControl === 'no-store' ? cacheControl : privateOnly(cacheControl));
  }
  return list;
}

/** Headers every proxied response carries: request id, cache status, and the bucket's CORS answer. */
function baseHeaders(ctx: RequestContext, headers: Record<string, string>): string[] {
  return withBaseHeaders(ctx, headerList(headers, ctx.bucket?.auth != null), undefined);
}

/** The per-request headers appended to a copy of a response's own (prebuilt, see representation.ts). */
function withBaseHeaders(ctx: RequestContext, own: readonly string[], age: string | undefined): string[] {
  const headers = own.slice();
  if (age !== undefined) headers.push('age', age);
  headers.push('x-request-id', ctx.id);
  if (ctx.cacheStatus) headers.push('x-cache', ctx.cacheStatus, 'cache-status', ctx.cacheStatusHeader!);
  const cors = ctx.bucket?.cors;
  if (cors) {
    // Karasu never forwards a Vary of its own (http/headers.ts), so there is nothing to merge with.
    headers.push('vary', 'Origin');
    const origin = cors.allowOrigin(ctx.req.headers.origin);
    if (origin) headers.push('access-control-allow-origin', origin, ...cors.responseHeaderList);
  }
  return headers;
}

/** Origins use a handful of Cache-Control values: rewriting each once keeps this off the hot path. */
const privateForms = new Map<string, string>();

/** `private` plus the origin's directives that still make sense for a private cache. */
export function privateOnly(value: string | undefined): string {
  if (!value) return 'private';
  let rewritten = privateForms.get(value);
  if (rewritten === undefined) {
    rewritten = rewritePrivate(value);
    if (privateForms.size < 1024) privateForms.set(value, rewritten);
  }
  return rewritten;
}

function rewritePrivate(value: string): string {
  const kept = value
    .split(',')
    .map((directive) => directive.trim())
    .filter((directive) => directive !== '' && !/^(?:public|private|s-maxage\s*=|proxy-revalidate)/i.test(directive));
  return ['private', ...kept].join(', ');
}

export function sendError(ctx: RequestContext, err: HttpError): void {
  const { res } = ctx;
  if (res.headersSent) {
    // Too late for a status: cut the connection so the client sees a truncated, not a complete, body.
    res.destroy();
    return;
  }
  const body = errorBody(err.status, err.code, err.message, ctx.id);
  const headers = baseHeaders(ctx, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    ...err.headers,
  });
  res.writeHead(err.status, headers);
  if (ctx.method === 'HEAD') res.end();
  else {
    ctx.bytesSent += Buffer.byteLength(body);
    res.end(body);
  }
}

export function sendHead(ctx: RequestContext, status: number, headers: Record<string, string>): void {
  ctx.res.writeHead(status, baseHeaders(ctx, headers));
  ctx.res.end();
}

export function sendBuffer(ctx: RequestContext, status: number, headers: Record<string, string>, body: Buffer): void {
  ctx.res.writeHead(status, baseHeaders(ctx, headers));
  if (ctx.method === 'HEAD') {
    ctx.res.end();
    return;
  }
  ctx.bytesSent += body.length;
  ctx.res.end(body);
}

/** A 200 with a prebuilt header list; `body` null for HEAD. */
export function sendPrebuilt(ctx: RequestContext, prebuilt: readonly string[], age: string | undefined, body: Buffer | Readable | null): void | Promise<void> {
  ctx.res.writeHead(200, withBaseHeaders(ctx, prebuilt, age));
  if (body === null) {
    ctx.res.end();
    return;
  }
  if (!Buffer.isBuffer(body)) return streamBody(ctx, body);
  ctx.bytesSent += body.length;
  ctx.res.end(body);
}

/**
 * Streams a body with backpressure. A source that fails midway destroys the client connection
 * (see relay), so a short body is never mistaken for a complete one.
 */
export function sendStream(
  ctx: RequestContext,
  status: number,
  headers: Record<string, string>,
  body: Readable,
  transform?: Transform,
): Promise<void> {
  ctx.res.writeHead(status, baseHeaders(ctx, headers));
  return streamBody(ctx, body, transform);
}

async function streamBody(ctx: RequestContext, body: Readable, transform?: Transform): Promise<void> {
  if (ctx.method === 'HEAD') {
    body.destroy();
    ctx.res.end();
    return;
  }
  // Straight from S3 to this client: written as read, no copy (upstream/body.ts).
  if (!transform && body instanceof UpstreamBody && body.relayable) return body.relayTo(ctx.res, ctx);
  // What reaches the client: after the transform, which may cut the body to a range.
  (transform ?? body).on('data', (chunk: Buffer) => {
    ctx.bytesSent += chunk.length;
  });
  await relay(body, transform ?? null, ctx.res);
}

/**
 * `source` (→ `transform`) → `res` with backpressure, settled when the response has finished. A source or
 * transform that fails or ends short destroys the response, so the client sees a cut and never a
 * complete-looking body; a client that leaves destroys the source. This is what stream.pipeline does,
 * without its per-call AbortController, whose DOMException on every completion cost more CPU than the
 * rest of a streamed miss's JavaScript.
 */
function relay(source: Readable, transform: Transform | null, res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      source.destroy();
      transform?.destroy();
      res.destroy();
      reject(err);
    };
    const cutShort = (stream: Readable): void => {
      if (!stream.readableEnded) fail(new Error('the response body ended before it was complete'));
    };
    // `on`, not `once`, for errors: fail() is idempotent, and an error emitted after the first with no
    // listener left would crash the process.
    source.on('error', fail).once('close', () => cutShort(source));
    res.on('error', fail);
    res.once('close', () => (res.writableFinished ? undefined : fail(new Error('the client closed the connection'))));
    res.once('finish', () => {
      settled = true;
      resolve();
    });
    if (transform) {
      transform.on('error', fail).once('close', () => cutShort(transform));
      source.pipe(transform).pipe(res);
    } else {
      source.pipe(res);
    }
  });
}

export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  return new HttpError(500, 'InternalError', 'Karasu failed to handle the request');
}
