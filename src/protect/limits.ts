import type { IncomingMessage } from 'node:http';
import type { SecurityLimits } from '../config/types.js';
import { HttpError } from '../http/errors.js';

/**
 * Cheap checks on what the client sent, before any routing: URI length (414), header bytes (431),
 * declared body size (413). Node's parser caps headers too; this enforces the configured (reloadable)
 * limit below that cap.
 */
export function checkRequestLimits(req: IncomingMessage, limits: SecurityLimits): HttpError | null {
  const url = req.url ?? '';
  if (url.length > limits.max_uri_length) {
    return new HttpError(414, 'UriTooLong', `The request URI is longer than ${limits.max_uri_length} bytes`);
  }
  const raw = req.rawHeaders;
  let headerBytes = 0;
  for (let i = 0; i < raw.length; i++) headerBytes += raw[i].length + 2;
  if (headerBytes > limits.max_header_size) {
    return new HttpError(431, 'HeadersTooLarge', `The request headers are larger than ${limits.max_header_size} bytes`);
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limits.max_body_size) {
    return new HttpError(413, 'PayloadTooLarge', `The request body is larger than ${limits.max_body_size} bytes`);
  }
  return null;
}
