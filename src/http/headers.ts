import { quoteEtag } from './conditional.js';

/** Object headers forwarded from S3 to the client (PRODUCT §2), besides `x-amz-meta-*`. */
const FORWARDED = [
  'content-type',
  'last-modified',
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'expires',
  'x-amz-version-id',
] as const;

/**
 * The representation headers Karasu keeps from an S3 response: the same set whether the response
 * streams through or is stored, so a hit and a miss look alike. Length and ranges are set by the
 * responder, which knows what it actually sends.
 */
export function objectHeaders(s3: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of FORWARDED) {
    const value = s3[name];
    if (value !== undefined) out[name] = value;
  }
  const etag = quoteEtag(s3.etag);
  if (etag) out.etag = etag;
  for (const name in s3) {
    if (name.startsWith('x-amz-meta-')) out[name] = s3[name];
  }
  return out;
}

/** Headers a 304 keeps (RFC 9110 §15.4.5). */
const NOT_MODIFIED_KEEP = ['etag', 'last-modified', 'cache-control', 'expires', 'content-location', 'vary'];

export function notModifiedHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of NOT_MODIFIED_KEEP) if (headers[name] !== undefined) out[name] = headers[name];
  return out;
}
