import type { CorsConfig } from '../config/types.js';

const ALWAYS_EXPOSED = ['ETag', 'Content-Range', 'Accept-Ranges', 'Content-Length', 'X-Request-Id', 'X-Cache'];
const DEFAULT_ALLOWED_HEADERS = ['Authorization', 'Range', 'If-None-Match', 'If-Modified-Since', 'If-Match', 'If-Unmodified-Since', 'If-Range'];

/** Precomputed once per bucket at load: per request this is one origin check and a few assignments. */
export interface CorsPolicy {
  /** Headers for an allowed origin on an ordinary response (without Allow-Origin itself). */
  responseHeaders: Record<string, string>;
  /** The same as a flat [name, value, …] list, for responders that send header lists. */
  responseHeaderList: readonly string[];
  preflightHeaders: Record<string, string>;
  allowOrigin(origin: string | undefined): string | null;
}

export function buildCorsPolicy(cors: CorsConfig): CorsPolicy {
  const anyOrigin = cors.allowed_origins.includes('*');
  const origins = new Set(cors.allowed_origins);
  const expose = [...new Set([...ALWAYS_EXPOSED, ...cors.expose_headers])].join(', ');
  const allowHeaders = cors.allowed_headers.length > 0 ? cors.allowed_headers : DEFAULT_ALLOWED_HEADERS;
  const credentials: Record<string, string> = cors.allow_credentials ? { 'access-control-allow-credentials': 'true' } : {};
  const responseHeaders: Record<string, string> = { 'access-control-expose-headers': expose, ...credentials };
  return {
    responseHeaders,
    responseHeaderList: Object.entries(responseHeaders).flat(),
    preflightHeaders: {
      'access-control-allow-methods': 'GET, HEAD, OPTIONS',
      'access-control-allow-headers': allowHeaders.join(', '),
      'access-control-max-age': String(cors.max_age_seconds),
      ...credentials,
    },
    allowOrigin(origin) {
      if (!origin) return null;
      if (anyOrigin) return cors.allow_credentials ? origin : '*';
      return origins.has(origin) ? origin : null;
    },
  };
}
