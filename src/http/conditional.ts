// Conditional requests (RFC 9110 §13). Evaluated by Karasu against the representation's validators,
// whatever the source (cache entry or upstream response), so behaviour does not depend on how well the
// S3 implementation behind us handles conditionals.

export interface Validators {
  /** Quoted entity tag as sent to clients, e.g. `"abc"` or `W/"abc"`. */
  etag: string | null;
  /** HTTP-date. */
  lastModified: string | null;
}

export interface ConditionalHeaders {
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
}

export type PreconditionOutcome = 'proceed' | 'not-modified' | 'failed';

/** Ensures an ETag is in its quoted form; S3 and caches sometimes hand them out bare. */
export function quoteEtag(raw: string | undefined | null): string | null {
  if (!raw) return null;
  const value = raw.trim();
  if (value.startsWith('"') || value.startsWith('W/"')) return value;
  return `"${value}"`;
}

function opaqueTag(tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag;
}

/** Splits an entity-tag list (`"a", W/"b"`), honouring commas inside quotes. */
function tagList(header: string): string[] {
  const tags: string[] = [];
  const re = /\s*((?:W\/)?"[^"]*"|\*)\s*(?:,|$)/gy;
  let m: RegExpExecArray | null;
  while (re.lastIndex < header.length && (m = re.exec(header)) !== null) tags.push(m[1]);
  return tags;
}

function weakMatch(header: string, etag: string): boolean {
  const target = opaqueTag(etag);
  return tagList(header).some((tag) => tag === '*' || opaqueTag(tag) === target);
}

function strongMatch(header: string, etag: string): boolean {
  if (etag.startsWith('W/')) return tagList(header).includes('*');
  return tagList(header).some((tag) => tag === '*' || tag === etag);
}

/** Seconds since the epoch, or null when the header is not a valid HTTP-date. */
export function parseHttpDate(value: string | undefined | null): number | null {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

/** RFC 9110 §13.2.2: the order in which preconditions are evaluated for GET/HEAD. */
export function evaluatePreconditions(h: ConditionalHeaders, v: Validators): PreconditionOutcome {
  if (h.ifMatch !== undefined) {
    if (!v.etag || !strongMatch(h.ifMatch, v.etag)) return 'failed';
  } else if (h.ifUnmodifiedSince !== undefined) {
    const since = parseHttpDate(h.ifUnmodifiedSince);
    const lastModified = parseHttpDate(v.lastModified);
    if (since !== null && lastModified !== null && lastModified > since) return 'failed';
  }

  if (h.ifNoneMatch !== undefined) {
    if (v.etag && weakMatch(h.ifNoneMatch, v.etag)) return 'not-modified';
    if (h.ifNoneMatch.trim() === '*') return 'not-modified';
  } else if (h.ifModifiedSince !== undefined) {
    const since = parseHttpDate(h.ifModifiedSince);
    const lastModified = parseHttpDate(v.lastModified);
    if (since !== null && lastModified !== null && lastModified <= since) return 'not-modified';
  }
  return 'proceed';
}

/** RFC 9110 §13.1.5: whether a Range may be applied given If-Range. Strong comparison only. */
export function ifRangeAllows(ifRange: string | undefined, v: Validators): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/"')) {
    return !!v.etag && !value.startsWith('W/') && !v.etag.startsWith('W/') && value === v.etag;
  }
  const date = parseHttpDate(value);
  const lastModified = parseHttpDate(v.lastModified);
  return date !== null && lastModified !== null && date === lastModified;
}
