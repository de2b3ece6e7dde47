import { Transform } from 'node:stream';
import { evaluatePreconditions, ifRangeAllows, type ConditionalHeaders, type Validators } from '../http/conditional.js';
import { HttpError } from '../http/errors.js';
import { notModifiedHeaders, objectHeaders } from '../http/headers.js';
import {
  contentRangeHeader,
  parseContentRange,
  parseRange,
  parseUnsatisfiedRange,
  rangeHeader,
  resolveRange,
  unsatisfiedRangeHeader,
  type ByteRange,
  type RangeSpec,
} from '../http/range.js';
import { clientGone, type RequestContext } from '../pipeline/context.js';
import type { UpstreamRequest, UpstreamResponse } from '../upstream/replica-set.js';
import { sendError, sendHead, sendStream } from './respond.js';

/** S3 error codes Karasu passes on with their status (no XML, no bucket names). */
const S3_ERRORS: Record<number, [string, string]> = {
  403: ['AccessDenied', 'The storage backend denied access to this object'],
  404: ['NoSuchKey', 'The object does not exist'],
  412: ['PreconditionFailed', 'A precondition in the request did not hold'],
  416: ['InvalidRange', 'The requested range is not satisfiable'],
};

export function conditionalHeaders(ctx: RequestContext): ConditionalHeaders {
  const h = ctx.req.headers;
  return {
    ifMatch: h['if-match'],
    ifNoneMatch: h['if-none-match'],
    ifModifiedSince: h['if-modified-since'],
    ifUnmodifiedSince: h['if-unmodified-since'],
  };
}

/**
 * Serves a request straight from S3. Range and conditionals are forwarded so S3 moves as few bytes
 * as it can, and then checked against S3's answer with Karasu's own RFC 9110 logic: a backend that
 * ignores `If-Match`, answers a suffix range from the wrong end or leaves `Content-Range` off a 416
 * still yields a correct response (one extra request, only in those cases).
 */
export async function serveFromUpstream(ctx: RequestContext): Promise<void> {
  const bucket = ctx.bucket!;
  const conditions = conditionalHeaders(ctx);
  const spec = ctx.method === 'GET' ? parseRange(ctx.req.headers.range) : null;
  const request: UpstreamRequest = {
    method: ctx.method === 'HEAD' ? 'HEAD' : 'GET',
    key: ctx.key,
    range: spec ? ctx.req.headers.range : undefined,
    ...conditions,
    signal: clientGone(ctx),
  };
  const timeoutMs = ctx.snapshot.config.server.request_timeout * 1000;
  let response = await bucket.upstream.send(request, timeoutMs);
  note(ctx, response);

  if (response.status === 304) {
    // A 304 should carry the validators (RFC 9110 §15.4.5); for a backend that leaves them out (s3rver),
    // a HEAD fetches them without moving the body.
    const headers = response.headers.etag ? response.headers : await validatorsFromHead(ctx, timeoutMs, response.headers);
    sendHead(ctx, 304, notModifiedHeaders(objectHeaders(headers)));
    return;
  }
  if (response.status === 416 && spec) {
    const size = response.actualObjectSize ?? parseUnsatisfiedRange(response.headers['content-range']) ?? (await objectSize(ctx, timeoutMs));
    return rangeNotSatisfiable(ctx, size);
  }
  if (response.status >= 300) return sendError(ctx, s3Error(response));

  const headers = objectHeaders(response.headers);
  const validators: Validators = { etag: headers.etag ?? null, lastModified: headers['last-modified'] ?? null };
  const outcome = evaluatePreconditions(conditions, validators);
  if (outcome !== 'proceed') {
    response.body?.destroy();
    if (outcome === 'failed') return sendError(ctx, preconditionFailed());
    return sendHead(ctx, 304, notModifiedHeaders(headers));
  }

  const rangeAllowed = spec !== null && ifRangeAllows(ctx.req.headers['if-range'] as string | undefined, validators);
  if (rangeAllowed && (await answerRange(ctx, response, headers, spec, request, timeoutMs))) return;
  if (response.status === 206) {
    // If-Range failed, or the backend's Content-Range was unreadable: fetch the whole representation
    // and decide again on it (a readable size may still make the range unsatisfiable, e.g. 0 bytes).
    response.body?.destroy();
    response = await bucket.upstream.send({ ...request, range: undefined }, timeoutMs);
    note(ctx, response);
    if (response.status !== 200) return sendError(ctx, s3Error(response));
    if (rangeAllowed && (await answerRange(ctx, response, objectHeaders(response.headers), spec, request, timeoutMs))) return;
  }
  return sendWhole(ctx, response, objectHeaders(response.headers));
}

/** Answers the range (206 or 416) when the representation's size is known; false when it is not. */
async function answerRange(
  ctx: RequestContext,
  response: UpstreamResponse,
  headers: Record<string, string>,
  spec: RangeSpec,
  request: UpstreamRequest,
  timeoutMs: number,
): Promise<boolean> {
  const size = representationSize(response);
  if (size === null) return false;
  const wanted = resolveRange(spec, size);
  if (!wanted) {
    response.body?.destroy();
    rangeNotSatisfiable(ctx, size);
    return true;
  }
  await sendRange(ctx, response, headers, wanted, size, request, timeoutMs);
  return true;
}

async function sendRange(
  ctx: RequestContext,
  response: UpstreamResponse,
  headers: Record<string, string>,
  wanted: ByteRange,
  size: number,
  request: UpstreamRequest,
  timeoutMs: number,
): Promise<void> {
  let body = response.body;
  let cut = cutFrom(response, wanted);
  if (cut === null) {
    // The backend sent other bytes than asked for: ask again for exactly these, of this very object.
    response.body?.destroy();
    const again = await ctx.bucket!.upstream.send(
      { ...request, range: rangeHeader(wanted), ifMatch: headers.etag, ifNoneMatch: undefined, ifModifiedSince: undefined, ifUnmodifiedSince: undefined },
      timeoutMs,
    );
    note(ctx, again);
    cut = cutFrom(again, wanted);
    if (cut === null || !again.body) {
      again.body?.destroy();
      throw new HttpError(502, 'BadGateway', 'The storage backend answered the range request inconsistently');
    }
    body = again.body;
  }
  headers['content-range'] = contentRangeHeader(wanted, size);
  headers['content-length'] = String(wanted.end - wanted.start + 1);
  headers['accept-ranges'] = 'bytes';
  await sendStream(ctx, 206, headers, body!, cut);
}

/**
 * How to get `wanted` out of an upstream answer: nothing to cut (exactly those bytes), a slice (a 200,
 * or a 206 covering more), or null when the answer does not contain them.
 */
function cutFrom(response: UpstreamResponse, wanted: ByteRange): Transform | undefined | null {
  if (!response.body) return null;
  if (response.status === 200) return slice(wanted, 0);
  if (response.status !== 206) return null;
  const got = parseContentRange(response.headers['content-range']);
  if (!got || got.start > wanted.start || got.end < wanted.end) return null;
  if (got.start === wanted.start && got.end === wanted.end) return undefined;
  return slice(wanted, got.start);
}

async function sendWhole(ctx: RequestContext, response: UpstreamResponse, headers: Record<string, string>): Promise<void> {
  const length = response.headers['content-length'];
  if (length !== undefined) headers['content-length'] = length;
  headers['accept-ranges'] = 'bytes';
  if (!response.body) return sendHead(ctx, 200, headers);
  await sendStream(ctx, 200, headers, response.body);
}

function rangeNotSatisfiable(ctx: RequestContext, size: number | null): void {
  const headers: Record<string, string> = size === null ? {} : { 'content-range': unsatisfiedRangeHeader(size) };
  sendError(ctx, new HttpError(416, 'InvalidRange', 'The requested range is not satisfiable', headers));
}

function preconditionFailed(): HttpError {
  return new HttpError(412, 'PreconditionFailed', 'A precondition in the request did not hold');
}

/** Answers with what S3 said, as Karasu's JSON error (no XML, no bucket names). */
export function upstreamError(ctx: RequestContext, response: UpstreamResponse): void {
  sendError(ctx, s3Error(response));
}

function s3Error(response: UpstreamResponse): HttpError {
  const known = S3_ERRORS[response.status];
  if (known) return new HttpError(response.status, response.errorCode ?? known[0], known[1]);
  if (response.status >= 400 && response.status < 500) {
    return new HttpError(response.status, response.errorCode ?? 'UpstreamError', `The storage backend answered ${response.status}`);
  }
  return new HttpError(502, 'BadGateway', `The storage backend answered ${response.status} unexpectedly`);
}

/** The full object's length from a 200's Content-Length or a 206's Content-Range. */
function representationSize(response: UpstreamResponse): number | null {
  if (response.status === 206) return parseContentRange(response.headers['content-range'])?.size ?? null;
  const length = response.headers['content-length'];
  return length === undefined ? null : Number(length);
}

async function validatorsFromHead(ctx: RequestContext, timeoutMs: number, fallback: Record<string, string>): Promise<Record<string, string>> {
  const head = await ctx.bucket!.upstream.send({ method: 'HEAD', key: ctx.key, signal: clientGone(ctx) }, timeoutMs);
  return head.status === 200 ? head.headers : fallback;
}

/** Only for a 416 from a backend that does not say how large the object is. */
async function objectSize(ctx: RequestContext, timeoutMs: number): Promise<number | null> {
  const head = await ctx.bucket!.upstream.send({ method: 'HEAD', key: ctx.key, signal: clientGone(ctx) }, timeoutMs);
  const length = head.status === 200 ? head.headers['content-length'] : undefined;
  return length === undefined ? null : Number(length);
}

function note(ctx: RequestContext, response: UpstreamResponse): void {
  ctx.upstreamStatus = response.status;
  ctx.replica = response.replica;
}

/** Passes through only bytes [start, end] of a stream whose first byte is at `base`. */
function slice(range: ByteRange, base: number): Transform {
  let offset = base;
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const from = Math.max(range.start - offset, 0);
      const to = Math.min(range.end + 1 - offset, chunk.length);
      offset += chunk.length;
      done(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
}
