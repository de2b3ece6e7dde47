import type { Readable } from 'node:stream';
import { evaluatePreconditions, ifRangeAllows } from '../http/conditional.js';
import { HttpError } from '../http/errors.js';
import { notModifiedHeaders } from '../http/headers.js';
import { contentRangeHeader, parseRange, resolveRange, unsatisfiedRangeHeader, type ByteRange } from '../http/range.js';
import type { RequestContext } from '../pipeline/context.js';
import { conditionalHeaders } from './from-upstream.js';
import { sendBuffer, sendError, sendHead, sendStream } from './respond.js';

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
 * Range and HEAD are all decided here, identically for every tier and for coalesced fills.
 */
export async function serveRepresentation(
  ctx: RequestContext,
  rep: KnownRepresentation,
  source: BodySource,
  extraHeaders?: Record<string, string>,
): Promise<void> {
  const validators = { etag: rep.etag, lastModified: rep.lastModified };
  const outcome = hasConditionals(ctx) ? evaluatePreconditions(conditionalHeaders(ctx), validators) : 'proceed';
  if (outcome === 'failed') {
    source.discard();
    return sendError(ctx, new HttpError(412, 'PreconditionFailed', 'A precondition in the request did not hold'));
  }
  if (outcome === 'not-modified') {
    source.discard();
    return sendHead(ctx, 304, { ...notModifiedHeaders(rep.headers), ...extraHeaders });
  }
  const headers: Record<string, string> = { ...rep.headers, ...extraHeaders, 'accept-ranges': 'bytes' };
  const spec = ctx.method === 'GET' ? parseRange(ctx.req.headers.range) : null;
  let range: ByteRange | null = null;
  if (spec && ifRangeAllows(ctx.req.headers['if-range'] as string | undefined, validators)) {
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
  await sendStream(ctx, status, headers, body);
}
