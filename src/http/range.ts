// Byte ranges (RFC 9110 §14). Karasu serves one range per response; a multi-range request is answered
// with the whole representation (200), which the RFC allows and which every client handles.

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/** A syntactically valid single range spec, before the representation's length is known. */
export type RangeSpec =
  | { kind: 'from'; start: number; end: number | null } // bytes=10-20, bytes=10-
  | { kind: 'suffix'; length: number }; // bytes=-500

const SINGLE_RANGE = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i;

/**
 * Parses a Range header. Returns null when the header is absent, malformed, multi-range or of another
 * unit: all of those mean "ignore Range and answer 200" (RFC 9110 §14.2).
 */
export function parseRange(header: string | undefined): RangeSpec | null {
  if (!header) return null;
  const m = SINGLE_RANGE.exec(header);
  if (!m) return null;
  const [, first, last] = m;
  if (first === '' && last === '') return null;
  if (first === '') {
    const length = Number(last);
    return Number.isSafeInteger(length) ? { kind: 'suffix', length } : null;
  }
  const start = Number(first);
  const end = last === '' ? null : Number(last);
  if (!Number.isSafeInteger(start) || (end !== null && !Number.isSafeInteger(end))) return null;
  if (end !== null && end < start) return null; // invalid spec → ignored, not 416
  return { kind: 'from', start, end };
}

/** Resolves a spec against a length: the range to send, or null when unsatisfiable (→ 416). */
export function resolveRange(spec: RangeSpec, size: number): ByteRange | null {
  if (spec.kind === 'suffix') {
    if (spec.length === 0 || size === 0) return null;
    return { start: Math.max(0, size - spec.length), end: size - 1 };
  }
  if (spec.start >= size) return null;
  const end = spec.end === null ? size - 1 : Math.min(spec.end, size - 1);
  return { start: spec.start, end };
}

export function contentRangeHeader(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`;
}

export function unsatisfiedRangeHeader(size: number): string {
  return `bytes */${size}`;
}

export function rangeHeader(range: ByteRange): string {
  return `bytes=${range.start}-${range.end}`;
}

const CONTENT_RANGE = /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i;

/** Parses an upstream `Content-Range: bytes a-b/N`; null when absent or malformed. */
export function parseContentRange(header: string | undefined): (ByteRange & { size: number | null }) | null {
  if (!header) return null;
  const m = CONTENT_RANGE.exec(header.trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const size = m[3] === '*' ? null : Number(m[3]);
  if (end < start || (size !== null && end >= size)) return null;
  return { start, end, size };
}

const UNSATISFIED_RANGE = /^bytes\s+\*\/(\d+)$/i;

export function parseUnsatisfiedRange(header: string | undefined): number | null {
  const m = header ? UNSATISFIED_RANGE.exec(header.trim()) : null;
  return m ? Number(m[1]) : null;
}
