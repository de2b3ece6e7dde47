import type { Readable } from 'node:stream';
import { evaluatePreconditions, ifRangeAllows } from '../http/conditional.js';
import { HttpError } from '../http/errors.js';
import { notModifiedHeaders } from '../http/headers.js';
import { contentRangeHeader, parseRange, resolveRange, unsatisfiedRangeHeader, type ByteRange } from '../http/range.js';
import type { RequestContext } from '../pipeline/context.js';
import { conditionalHeaders } from './from-upstream.js';
import { headerList, sendBuffer, sendError, sendHead, sendPrebuilt, sendStream } from './respond.js';

export interface KnownRepresentation {
  headers: Record<string, string>;
  size: number;
  etag: string | null;
  lastModified: string | null;
}

function hasConditionals(ctx: RequestContext): boolean {
  const h = ctx.req.headers;
  return h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-match'] !== undefined || h['if-unmodified-since'] !== undefined;
}

/** Where the bytes come from: a Buffer (memory, redis), a file or a spool (streams). */
export interface BodySource {
  /** `range` null = the whole body. */
  open(range: ByteRange | null): Buffer | Readable;
  /** Called instead of open when no body is sent (HEAD, 304, 412, 416). */
  discard(): void;
}

/**
 * Answers a request from a representation whose length and validators Karasu knows: conditionals,
 * Range and HEAD are all decided here, identically for every tier and for coalesced fills. `age` is
 * set for stored representations. Synchronous when the body is a Buffer.
 */
export function serveRepresentation(ctx: RequestContext, rep: KnownRepresentation, source: BodySource, age?: string): void | Promise<void> {
  const { headers: reqHeaders } = ctx.req;
  const ranged = ctx.method === 'GET' && reqHeaders.range !== undefined;
  if (!ranged && !hasConditionals(ctx)) {
    // The common case, a whole 200: headers from the list built once per representation.
    const prebuilt = fullResponseHeaders(rep, ctx.bucket?.auth != null);
    if (ctx.method === 'HEAD') {
      source.discard();
      return sendPrebuilt(ctx, prebuilt, age, null);
    }
    return sendPrebuilt(ctx, prebuilt, age, source.open(null));
  }
  const validators = { etag: rep.etag, lastModified: rep.lastModified };
  const outcome = hasConditionals(ctx) ? evaluatePreconditions(conditionalHeaders(ctx), validators) : 'proceed';
  if (outcome === 'failed') {
    source.discard();
    return sendError(ctx, new HttpError(412, 'PreconditionFailed', 'A precondition in the request did not hold'));
  }
  const extra = age === undefined ? undefined : { age };
  if (outcome === 'not-modified') {
    source.discard();
    return sendHead(ctx, 304, { ...notModifiedHeaders(rep.headers), ...extra });
  }
  const headers: Record<string, string> = { ...rep.headers, ...extra, 'accept-ranges': 'bytes' };
  const spec = ranged ? parseRange(reqHeaders.range) : null;
  let range: ByteRange | null = null;
  if (spec && ifRangeAllows(reqHeaders['if-range'] as string | undefined, validators)) {
    range = resolveRange(spec, rep.size);
    if (!range) {
      source.discard();
      return sendError(ctx, new HttpError(416, 'InvalidRange', 'The requested range is not satisfiable', { 'content-range': unsatisfiedRangeHeader(rep.size) }));
    }
    headers['content-range'] = contentRangeHeader(range, rep.size);
  }
  const status = range ? 206 : 200;
  headers['content-length'] = String(range ? range.end - range.start + 1 : rep.size);
  if (ctx.method === 'HEAD') {
    source.discard();
    return sendHead(ctx, status, headers);
  }
  const body = source.open(range);
  if (Buffer.isBuffer(body)) return sendBuffer(ctx, status, headers, body);
  return sendStream(ctx, status, headers, body);
}

interface PrebuiltHeaders {
  size: number;
  shared: readonly string[];
  /** For token-protected buckets (see privateOnly); built on first use. */
  private: readonly string[] | null;
}

/** Keyed by the headers object, which is replaced, never changed, when a representation is refreshed. */
const prebuiltHeaders = new WeakMap<Record<string, string>, PrebuiltHeaders>();

/** A whole 200's representation headers, ranges and length as a flat list, built once. */
function fullResponseHeaders(rep: KnownRepresentation, privateCache: boolean): readonly string[] {
  let built = prebuiltHeaders.get(rep.headers);
  if (built === undefined || built.size !== rep.size) {
    built = { size: rep.size, shared: wholeResponseList(rep, false), private: null };
    prebuiltHeaders.set(rep.headers, built);
  }
  if (!privateCache) return built.shared;
  return (built.private ??= wholeResponseList(rep, true));
}

function wholeResponseList(rep: KnownRepresentation, privateCache: boolean): string[] {
  const list = headerList(rep.headers, privateCache);
  list.push('accept-ranges', 'bytes', 'content-length', String(rep.size));
  return list;
}
