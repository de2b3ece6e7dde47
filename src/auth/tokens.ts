// Finding the token in a request: the configured sources in order, the first one present wins (a bad
// token there is not rescued by a good one further down the list).
//
// A query-parameter token never leaves this module: the upstream request is built from the object key
// alone, logs carry the path without its query, and the cache key is bucket + object key. Nothing here
// copies `req.url`.
import type { IncomingMessage } from 'node:http';
import type { TokenSourceConfig } from '../config/types-auth.js';

const BEARER = /^bearer[ \t]+(.*)$/i;

export function extractToken(req: IncomingMessage, sources: readonly TokenSourceConfig[]): string | null {
  for (const source of sources) {
    let token: string | null;
    switch (source.type) {
      case 'bearer':
        token = bearer(req.headers.authorization);
        break;
      case 'header':
        token = fromHeader(req.headers[source.name], source.prefix);
        break;
      case 'query':
        token = fromQuery(req.url, source.name);
        break;
    }
    if (token) return token;
  }
  return null;
}

function bearer(value: string | undefined): string | null {
  if (!value) return null;
  // The usual spelling first: no regex over a token of hundreds of characters on every request.
  if (value.startsWith('Bearer ')) return nonEmpty(value.slice(7));
  const match = BEARER.exec(value);
  return match ? nonEmpty(match[1]) : null;
}

function fromHeader(value: string | string[] | undefined, prefix: string | null): string | null {
  const raw = Array.isArray(value) ? value[0] : value;
  if (!raw) return null;
  if (prefix === null) return nonEmpty(raw);
  if (raw.length < prefix.length || raw.slice(0, prefix.length).toLowerCase() !== prefix.toLowerCase()) return null;
  return nonEmpty(raw.slice(prefix.length));
}

function fromQuery(url: string | undefined, name: string): string | null {
  const q = url?.indexOf('?') ?? -1;
  if (q === -1) return null;
  const query = url!.slice(q + 1);
  // Cheap pre-check: most requests carry no query at all, or not this parameter.
  if (!query.includes(name)) return null;
  return nonEmpty(new URLSearchParams(query).get(name) ?? '');
}

function nonEmpty(value: string): string | null {
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}
