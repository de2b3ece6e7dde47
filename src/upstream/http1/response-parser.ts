/**
 * An HTTP/1.1 response parser (RFC 9112) for what an object store answers to GET and HEAD: the status
 * line, the header fields, and a body framed by Content-Length, the chunked coding, or the connection's
 * close. Body bytes are handed on as ranges of the very buffers the parser is given, never copied: the
 * caller decides how long those buffers live (see read-buffers.ts).
 *
 * Strict where leniency could let a backend smuggle a second answer into one connection: no obs-fold,
 * no bare LF, no Transfer-Encoding beside Content-Length, one Content-Length value.
 */

/** The answer is not HTTP/1.1 Karasu can trust; the connection is closed. */
export class ResponseParseError extends Error {
  readonly code = 'HTTP_PARSE';
}

export interface ResponseEvents {
  /** The final (non-1xx) head. `keepAlive`: the connection may carry another request after this answer. */
  onHead(status: number, headers: Record<string, string | string[]>, keepAlive: boolean): void;
  /** Body bytes: `buffer[start, end)`, valid only as long as the caller keeps `buffer` intact. */
  onBody(buffer: Buffer, start: number, end: number): void;
  /** The answer is complete. */
  onEnd(): void;
}

/** Largest status line plus header section accepted (S3 sends well under 4 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Largest chunk-size line (with extensions) and trailer section accepted. */
const MAX_CHUNK_LINE = 1024;
const MAX_TRAILER_BYTES = 16 * 1024;

const HEAD = 0;
const LENGTH = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_DATA_END = 4;
const TRAILERS = 5;
const UNTIL_CLOSE = 6;
const DONE = 7;
const IDLE = 8;

const CR = 13;
const LF = 10;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: [^\r\n]*)?$/;

export class ResponseParser {
  private state = IDLE;
  private head: Buffer | null = null;
  private remaining = 0;
  private line = '';
  private trailerBytes = 0;
  private headRequest = false;
  private keepAlive = false;
  /** Bytes of the current answer seen so far (a reused connection that closes before any is stale). */
  received = 0;

  constructor(private readonly events: ResponseEvents) {}

  /** Prepares for the answer to the request just sent. */
  expect(method: string): void {
    this.state = HEAD;
    this.head = null;
    this.headRequest = method === 'HEAD';
    this.received = 0;
  }

  /** True between expect() and the end of that answer. */
  get busy(): boolean {
    return this.state !== IDLE && this.state !== DONE;
  }

  /**
   * Parses `buffer[start, end)`. Returns how many bytes belonged to the current answer; the rest (when
   * the answer ended inside the buffer) is not part of any answer Karasu asked for.
   */
  execute(buffer: Buffer, start: number, end: number): number {
    if (this.state === IDLE || this.state === DONE) return 0;
    this.received += end - start;
    let at = start;
    while (at < end) {
      switch (this.state) {
        case HEAD:
          at = this.readHead(buffer, at, end);
          break;
        case LENGTH:
          at = this.counted(buffer, at, end);
          if (this.remaining === 0) this.finish();
          break;
        case CHUNK_SIZE:
          at = this.readChunkSize(buffer, at, end);
          break;
        case CHUNK_DATA:
          at = this.counted(buffer, at, end);
          if (this.remaining === 0) {
            this.state = CHUNK_DATA_END;
            this.remaining = 2;
          }
          break;
        case CHUNK_DATA_END: {
          const expected = this.remaining === 2 ? CR : LF;
          if (buffer[at] !== expected) throw new ResponseParseError('chunk data not followed by CRLF');
          at++;
          if (--this.remaining === 0) this.state = CHUNK_SIZE;
          break;
        }
        case TRAILERS:
          at = this.readTrailers(buffer, at, end);
          break;
        case UNTIL_CLOSE:
          this.events.onBody(buffer, at, end);
          at = end;
          break;
        default:
          // DONE: the rest is not ours.
          this.received -= end - at;
          return at - start;
      }
    }
    return at - start;
  }

  /**
   * The connection reached its end. Completes an answer framed by the close; false when the answer is
   * incomplete (or never started), which the caller reports as an error.
   */
  finishOnEof(): boolean {
    if (this.state === UNTIL_CLOSE) {
      this.finish();
      return true;
    }
    return this.state === IDLE || this.state === DONE;
  }

  /** Hands on up to `remaining` body bytes from `at`; returns where they stop. */
  private counted(buffer: Buffer, at: number, end: number): number {
    const stop = Math.min(end, at + this.remaining);
    this.remaining -= stop - at;
    this.events.onBody(buffer, at, stop);
    return stop;
  }

  private finish(): void {
    this.state = DONE;
    this.events.onEnd();
  }

  private readHead(buffer: Buffer, at: number, end: number): number {
    const piece = buffer.subarray(at, end);
    let data = piece;
    let carried = 0;
    if (this.head) {
      carried = this.head.length;
      data = Buffer.concat([this.head, piece]);
    }
    // The terminator may straddle the previous piece: search from just before where it ended.
    const found = data.indexOf(HEAD_END, Math.max(0, carried - 3));
    if (found === -1) {
      // Up to 3 of these bytes may begin the terminator: the same limit as when it is found.
      if (data.length - 3 > MAX_HEAD_BYTES) throw new ResponseParseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
      this.head = Buffer.from(data); // a copy: the caller reuses its buffer
      return end;
    }
    if (found > MAX_HEAD_BYTES) throw new ResponseParseError(`response head larger than ${MAX_HEAD_BYTES} bytes`);
    this.head = null;
    this.onHeadText(data.toString('latin1', 0, found));
    return at + (found + 4 - carried);
  }

  private onHeadText(text: string): void {
    const lines = text.split('\r\n');
    const status = STATUS_LINE.exec(lines[0]!);
    if (!status) throw new ResponseParseError(`not an HTTP/1.x status line: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const minor = status[1] === '1';
    const code = Number(status[2]);
    const headers: Record<string, string | string[]> = {};
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(':');
      if (colon <= 0) throw new ResponseParseError('malformed header line');
      const name = line.slice(0, colon);
      if (!TOKEN.test(name)) throw new ResponseParseError('malformed header name');
      const value = ows(line.slice(colon + 1));
      if (hasControl(value)) throw new ResponseParseError(`control character in header ${name}`);
      const key = name.toLowerCase();
      const seen = headers[key];
      if (seen === undefined) headers[key] = value;
      else if (typeof seen === 'string') headers[key] = [seen, value];
      else seen.push(value);
    }
    if (code < 200) {
      if (code === 101) throw new ResponseParseError('101 Switching Protocols without an upgrade request');
      return; // interim answer: the final one follows
    }
    this.frame(code, minor, headers);
  }

  /** RFC 9112 §6.3: how the body of this answer is delimited. */
  private frame(code: number, minor: boolean, headers: Record<string, string | string[]>): void {
    const connection = listValue(headers.connection).toLowerCase();
    let keepAlive = minor ? !hasToken(connection, 'close') : hasToken(connection, 'keep-alive');
    const te = headers['transfer-encoding'];
    const cl = headers['content-length'];
    let next: number;
    if (this.headRequest || code === 204 || code === 304) {
      next = DONE;
    } else if (te !== undefined) {
      if (cl !== undefined) throw new ResponseParseError('both Transfer-Encoding and Content-Length');
      if (!minor) throw new ResponseParseError('Transfer-Encoding in an HTTP/1.0 answer');
      const codings = listValue(te).toLowerCase().split(',');
      if (ows(codings[codings.length - 1]!) === 'chunked') {
        next = CHUNK_SIZE;
        this.line = '';
      } else {
        next = UNTIL_CLOSE;
      }
    } else if (cl !== undefined) {
      this.remaining = contentLength(cl);
      next = this.remaining === 0 ? DONE : LENGTH;
    } else {
      next = UNTIL_CLOSE;
    }
    if (next === UNTIL_CLOSE) keepAlive = false;
    this.keepAlive = keepAlive;
    this.state = next;
    this.events.onHead(code, headers, keepAlive);
    if (next === DONE && this.state === DONE) this.events.onEnd();
  }

  private readChunkSize(buffer: Buffer, at: number, end: number): number {
    const lf = buffer.indexOf(LF, at);
    const stop = lf === -1 || lf >= end ? end : lf;
    this.line += buffer.toString('latin1', at, stop);
    if (this.line.length > MAX_CHUNK_LINE) throw new ResponseParseError('chunk-size line too long');
    if (stop === end) return end;
    const line = this.line;
    this.line = '';
    if (!line.endsWith('\r')) throw new ResponseParseError('chunk-size line not ended by CRLF');
    const semicolon = line.indexOf(';');
    // BWS may precede a chunk extension's ';' (and is tolerated before CRLF); nothing may precede the digits.
    const digits = ows(semicolon === -1 ? line.slice(0, -1) : line.slice(0, semicolon), false);
    if (!/^[0-9a-fA-F]{1,13}$/.test(digits)) throw new ResponseParseError('malformed chunk size');
    const size = parseInt(digits, 16);
    if (size === 0) {
      this.state = TRAILERS;
      this.trailerBytes = 0;
    } else {
      this.state = CHUNK_DATA;
      this.remaining = size;
    }
    return stop + 1;
  }

  /** Trailer fields are read and dropped (S3 sends none on GET); an empty line ends the answer. */
  private readTrailers(buffer: Buffer, at: number, end: number): number {
    const lf = buffer.indexOf(LF, at);
    const stop = lf === -1 || lf >= end ? end : lf;
    this.line += buffer.toString('latin1', at, stop);
    this.trailerBytes += stop - at;
    if (this.trailerBytes > MAX_TRAILER_BYTES) throw new ResponseParseError('trailer section too large');
    if (stop === end) return end;
    const line = this.line;
    this.line = '';
    if (!line.endsWith('\r')) throw new ResponseParseError('trailer line not ended by CRLF');
    if (line === '\r') this.finish();
    return stop + 1;
  }

  /** Whether the connection may be reused after the answer that just ended. */
  get reusable(): boolean {
    return this.state === DONE && this.keepAlive;
  }
}

/**
 * Without optional whitespace (SP, HTAB) at the end, and at the start unless `leading` is false. Not
 * String.trim, which also strips CR, LF, VT, FF and U+00A0: a bare CR or LF must be seen (and refused),
 * and 0xA0 is a byte of raw UTF-8 in a value.
 */
function ows(value: string, leading = true): string {
  let start = 0;
  let end = value.length;
  while (leading && start < end && (value.charCodeAt(start) === 0x20 || value.charCodeAt(start) === 0x09)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 0x20 || value.charCodeAt(end - 1) === 0x09)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/** Field values are visible characters, spaces, tabs and obs-text: no NUL, CR, LF or other controls. */
function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

function listValue(value: string | string[] | undefined): string {
  if (value === undefined) return '';
  return typeof value === 'string' ? value : value.join(', ');
}

function hasToken(list: string, token: string): boolean {
  return list.split(',').some((item) => ows(item) === token);
}

/** One non-negative integer; a repeated field or a list must repeat the same value (RFC 9110 §8.6). */
function contentLength(value: string | string[]): number {
  const items = listValue(value).split(',');
  const first = ows(items[0]!);
  if (!/^\d{1,15}$/.test(first) || items.some((item) => ows(item) !== first)) {
    throw new ResponseParseError('invalid Content-Length');
  }
  return Number(first);
}
