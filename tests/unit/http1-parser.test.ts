// The HTTP/1.1 response parser (RFC 9112) the upstream pool reads S3 answers with: Content-Length,
// chunked and close-delimited bodies, fed whole, byte by byte and split at every point; the head's
// terminator across pieces; interim 1xx answers; HEAD/204/304 without a body; keep-alive rules; bytes
// after an answer; the end of the connection; the strictness that keeps a backend from smuggling a
// second answer; and reuse of one parser for several answers.
//
// Every piece is copied into one shared scratch buffer that is overwritten with 0xEE garbage after each
// execute() call, so a parser keeping a reference to body bytes across calls would be caught; the
// recorder copies body ranges out at once.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MAX_HEAD_BYTES, ResponseParseError, ResponseParser } from '../../src/upstream/http1/response-parser.js';

type Headers = Record<string, string | string[]>;

interface Head {
  status: number;
  headers: Headers;
  keepAlive: boolean;
}

interface Recorder {
  heads: Head[];
  bodies: Buffer[];
  ends: number;
  /** 'head' | 'body' | 'end' in the order they happened. */
  log: string[];
  body(): Buffer;
}

const GARBAGE = 0xee;
const scratch = Buffer.alloc(64 * 1024, GARBAGE);
/** The range the parser is being given right now (body ranges must lie inside it). */
let current: { buffer: Buffer; start: number; end: number } | null = null;

function recorder(): Recorder {
  const rec: Recorder = {
    heads: [],
    bodies: [],
    ends: 0,
    log: [],
    body: () => Buffer.concat(rec.bodies),
  };
  return rec;
}

function parserFor(rec: Recorder): ResponseParser {
  return new ResponseParser({
    onHead(status, headers, keepAlive) {
      rec.heads.push({ status, headers, keepAlive });
      rec.log.push('head');
    },
    onBody(buffer, start, end) {
      assert.ok(current, 'onBody outside execute()');
      assert.equal(buffer, current.buffer, 'body bytes are a range of the buffer given to execute()');
      assert.ok(start >= current.start && start < end && end <= current.end, `body range [${start}, ${end}) inside [${current.start}, ${current.end})`);
      rec.bodies.push(Buffer.from(buffer.subarray(start, end)));
      rec.log.push('body');
    },
    onEnd() {
      rec.ends++;
      rec.log.push('end');
    },
  });
}

/** Copies `piece` into the scratch buffer at `offset`, parses it there, then spoils the scratch. */
function feed(parser: ResponseParser, piece: Buffer, offset = 0): number {
  assert.ok(offset + piece.length <= scratch.length, 'piece fits the scratch buffer');
  piece.copy(scratch, offset);
  current = { buffer: scratch, start: offset, end: offset + piece.length };
  try {
    const used = parser.execute(scratch, offset, offset + piece.length);
    assert.ok(used >= 0 && used <= piece.length, `execute() returned ${used} for ${piece.length} bytes`);
    return used;
  } finally {
    current = null;
    scratch.fill(GARBAGE);
  }
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1');

/** A fresh parser expecting the answer to `method`, fed `pieces` in turn. */
function run(pieces: readonly Buffer[], method = 'GET'): { parser: ResponseParser; rec: Recorder; used: number[] } {
  const rec = recorder();
  const parser = parserFor(rec);
  parser.expect(method);
  const used = pieces.map((piece) => feed(parser, piece));
  return { parser, rec, used };
}

function byteByByte(buf: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let i = 0; i < buf.length; i++) pieces.push(buf.subarray(i, i + 1));
  return pieces;
}

/** Every way of cutting `buf` into two non-empty pieces. */
function everySplit(buf: Buffer): Array<[number, Buffer[]]> {
  const out: Array<[number, Buffer[]]> = [];
  for (let i = 1; i < buf.length; i++) out.push([i, [buf.subarray(0, i), buf.subarray(i)]]);
  return out;
}

function sum(values: number[]): number {
  return values.reduce((a, v) => a + v, 0);
}

/** The answer ended completely, all of `whole` consumed, on a connection that may be reused. */
function assertComplete(
  r: { parser: ResponseParser; rec: Recorder; used: number[] },
  whole: Buffer,
  expected: { status: number; body: Buffer; keepAlive?: boolean },
  label: string,
): void {
  const keepAlive = expected.keepAlive ?? true;
  assert.equal(sum(r.used), whole.length, `${label}: every byte consumed`);
  assert.equal(r.rec.heads.length, 1, `${label}: onHead once`);
  assert.equal(r.rec.heads[0]!.status, expected.status, `${label}: status`);
  assert.equal(r.rec.heads[0]!.keepAlive, keepAlive, `${label}: keepAlive`);
  assert.equal(r.rec.ends, 1, `${label}: onEnd once`);
  assert.equal(r.rec.log[0], 'head', `${label}: head first`);
  assert.equal(r.rec.log[r.rec.log.length - 1], 'end', `${label}: end last`);
  assert.deepEqual(r.rec.body(), expected.body, `${label}: body`);
  assert.equal(r.parser.busy, false, `${label}: not busy`);
  assert.equal(r.parser.reusable, keepAlive, `${label}: reusable`);
  assert.equal(r.parser.received, whole.length, `${label}: received`);
  assert.equal(r.parser.finishOnEof(), true, `${label}: an end of connection now is clean`);
  assert.equal(r.rec.ends, 1, `${label}: finishOnEof() after the end does not end it again`);
}

function assertParseError(pieces: readonly Buffer[], method = 'GET', message?: RegExp): Recorder {
  const rec = recorder();
  const parser = parserFor(rec);
  parser.expect(method);
  assert.throws(
    () => {
      for (const piece of pieces) feed(parser, piece);
    },
    (err: unknown) => {
      assert.ok(err instanceof ResponseParseError, `a ResponseParseError, not ${String(err)}`);
      assert.equal(err.code, 'HTTP_PARSE');
      if (message) assert.match(err.message, message);
      return true;
    },
  );
  assert.equal(rec.ends, 0, 'no onEnd for a rejected answer');
  return rec;
}

/** A head-only problem: the answer is rejected before any onHead. */
function assertHeadRejected(text: string, message?: RegExp): void {
  const whole = b(text);
  for (const [label, pieces] of [
    ['whole', [whole]],
    ['byte by byte', byteByByte(whole)],
  ] as const) {
    const rec = assertParseError(pieces, 'GET', message);
    assert.equal(rec.heads.length, 0, `${JSON.stringify(text)} (${label}): no onHead`);
  }
}

// ---------------------------------------------------------------------------------------------------

describe('Content-Length body', () => {
  // The body holds a CRLFCRLF, NUL and a fake status line: it is counted, never scanned.
  const body = b('hello\r\n\r\nHTTP/1.1 200 OK\r\n\x00world');
  const head =
    'HTTP/1.1 200 OK\r\n' +
    'Content-Type: application/octet-stream\r\n' +
    'X-Amz-Meta-Color: red\r\n' +
    'x-amz-meta-color: green\r\n' +
    'X-AMZ-META-COLOR: blue\r\n' +
    'ETag:"abc"\r\n' +
    'X-Spaces:   padded value \t \r\n' +
    'X-Empty:\r\n' +
    `Content-Length: ${body.length}\r\n\r\n`;
  const whole = Buffer.concat([b(head), body]);
  const expectedHeaders: Headers = {
    'content-type': 'application/octet-stream',
    'x-amz-meta-color': ['red', 'green', 'blue'],
    etag: '"abc"',
    'x-spaces': 'padded value',
    'x-empty': '',
    'content-length': String(body.length),
  };

  test('fed whole: headers lower-cased, repeated header as an array, body, one onHead and one onEnd', () => {
    const r = run([whole]);
    assertComplete(r, whole, { status: 200, body }, 'whole');
    assert.deepEqual(r.rec.heads[0]!.headers, expectedHeaders);
    assert.deepEqual(r.rec.log, ['head', 'body', 'end']);
  });

  test('fed byte by byte', () => {
    const r = run(byteByByte(whole));
    assertComplete(r, whole, { status: 200, body }, 'byte by byte');
    assert.deepEqual(r.rec.heads[0]!.headers, expectedHeaders);
    assert.equal(r.rec.bodies.length, body.length, 'one onBody per body byte');
    assert.ok(r.used.every((n) => n === 1));
  });

  test('split into two pieces at every point', () => {
    for (const [at, pieces] of everySplit(whole)) {
      const r = run(pieces);
      assertComplete(r, whole, { status: 200, body }, `split at ${at}`);
      assert.deepEqual(r.rec.heads[0]!.headers, expectedHeaders, `split at ${at}: headers`);
      assert.deepEqual(r.used, [at, whole.length - at], `split at ${at}: execute() results`);
    }
  });

  test('busy until the last body byte, then not; onHead as soon as the head is complete', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    assert.equal(parser.busy, false, 'not busy before expect()');
    assert.equal(parser.reusable, false, 'not reusable before any answer');
    parser.expect('GET');
    assert.equal(parser.busy, true);
    feed(parser, b(head));
    assert.equal(rec.heads.length, 1);
    assert.equal(rec.ends, 0);
    assert.equal(parser.busy, true);
    assert.equal(parser.reusable, false, 'not reusable in the middle of a body');
    feed(parser, body.subarray(0, body.length - 1));
    assert.equal(rec.ends, 0);
    assert.equal(parser.busy, true);
    feed(parser, body.subarray(body.length - 1));
    assert.equal(rec.ends, 1);
    assert.equal(parser.busy, false);
    assert.equal(parser.reusable, true);
    assert.deepEqual(rec.body(), body);
  });

  test('a body larger than the scratch buffer, in 64 KiB pieces at an offset', () => {
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) % 200; // never the 0xEE garbage
    const all = Buffer.concat([b(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`), big]);
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    const used: number[] = [];
    const pieceSize = 60_000;
    for (let at = 0; at < all.length; at += pieceSize) used.push(feed(parser, all.subarray(at, at + pieceSize), 1000));
    assertComplete({ parser, rec, used }, all, { status: 200, body: big }, 'big');
  });

  test('Content-Length: 0 ends the answer with the head', () => {
    const whole0 = b('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    const r = run([whole0]);
    assertComplete(r, whole0, { status: 200, body: Buffer.alloc(0) }, 'empty');
    assert.deepEqual(r.rec.log, ['head', 'end']);
  });

  test('a status line without a reason phrase, and other final statuses', () => {
    for (const [line, status] of [
      ['HTTP/1.1 200', 200],
      ['HTTP/1.1 200 ', 200],
      ['HTTP/1.1 206 Partial Content', 206],
      ['HTTP/1.1 404 Not Found', 404],
      ['HTTP/1.1 503 Slow Down', 503],
    ] as const) {
      const whole1 = b(`${line}\r\nContent-Length: 2\r\n\r\nok`);
      assertComplete(run([whole1]), whole1, { status, body: b('ok') }, line);
    }
  });
});

describe('chunked body', () => {
  const chunkA = b('hello');
  const chunkB = b('0123456789'); // size A, upper-case hex
  const chunkC = b('\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n\x00\xff'); // counted, never scanned
  const chunkCSize = chunkC.length.toString(16).toUpperCase();
  const whole = b(
    'HTTP/1.1 200 OK\r\n' +
      'Transfer-Encoding: chunked\r\n' +
      'Content-Type: text/plain\r\n\r\n' +
      `5;name=value\r\n${chunkA.toString('latin1')}\r\n` +
      `A\r\n${chunkB.toString('latin1')}\r\n` +
      `${chunkCSize};a=1;b="quoted;value"\r\n${chunkC.toString('latin1')}\r\n` +
      '0\r\n' +
      'x-trailer: 1\r\n' +
      'x-other-trailer: two\r\n' +
      '\r\n',
  );
  const body = Buffer.concat([chunkA, chunkB, chunkC]);

  test('fed whole: extensions, upper-case hex, several chunks, trailers', () => {
    const r = run([whole]);
    assertComplete(r, whole, { status: 200, body }, 'whole');
    assert.deepEqual(r.rec.heads[0]!.headers, { 'transfer-encoding': 'chunked', 'content-type': 'text/plain' });
    assert.deepEqual(r.rec.bodies, [chunkA, chunkB, chunkC], 'one onBody per chunk when fed whole');
  });

  test('fed byte by byte', () => {
    const r = run(byteByByte(whole));
    assertComplete(r, whole, { status: 200, body }, 'byte by byte');
    assert.equal(r.rec.bodies.length, body.length, 'one onBody per data byte; none for framing bytes');
  });

  test('split into two pieces at every point', () => {
    for (const [at, pieces] of everySplit(whole)) {
      const r = run(pieces);
      assertComplete(r, whole, { status: 200, body }, `split at ${at}`);
      assert.deepEqual(r.used, [at, whole.length - at], `split at ${at}: execute() results`);
    }
  });

  test('the end is not reached before the final empty line after the trailers', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    feed(parser, whole.subarray(0, whole.length - 1));
    assert.equal(rec.ends, 0, 'no end before the last LF');
    assert.equal(parser.busy, true);
    assert.equal(parser.finishOnEof(), false, 'the connection closing here leaves the answer incomplete');
    feed(parser, whole.subarray(whole.length - 1));
    assert.equal(rec.ends, 1);
    assert.equal(parser.busy, false);
    assert.equal(parser.reusable, true);
  });

  test('no trailers, lower-case hex, leading zeros, whitespace before an extension', () => {
    const data = Buffer.alloc(0x1f, 0x61);
    const whole1 = b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n001f ; ext\r\n${data.toString('latin1')}\r\n0\r\n\r\n`);
    for (const [label, pieces] of [
      ['whole', [whole1]],
      ['byte by byte', byteByByte(whole1)],
    ] as const) {
      assertComplete(run(pieces), whole1, { status: 200, body: data }, label);
    }
  });

  test('an empty chunked body', () => {
    const whole1 = b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    const r = run([whole1]);
    assertComplete(r, whole1, { status: 200, body: Buffer.alloc(0) }, 'empty');
    assert.deepEqual(r.rec.log, ['head', 'end']);
  });

  test('Transfer-Encoding values are matched without regard to case', () => {
    const whole1 = b('HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    assertComplete(run([whole1]), whole1, { status: 200, body: b('abc') }, 'Chunked');
  });
});

describe("the head's CRLFCRLF across pieces", () => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n';
  const whole = b(`${head}body`);
  const headEnd = head.length; // first byte of the body

  for (const cut of [1, 2, 3]) {
    test(`the terminator cut after its first ${cut} byte(s)`, () => {
      const at = headEnd - 4 + cut;
      const rec = recorder();
      const parser = parserFor(rec);
      parser.expect('GET');
      const first = feed(parser, whole.subarray(0, at));
      assert.equal(first, at);
      assert.equal(rec.heads.length, 0, 'no onHead before the terminator is complete');
      const second = feed(parser, whole.subarray(at));
      assert.equal(second, whole.length - at);
      assertComplete({ parser, rec, used: [first, second] }, whole, { status: 200, body: b('body') }, `cut ${cut}`);
    });
  }

  test('the terminator spread over four pieces, the body in a fifth', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    const pieces = [whole.subarray(0, headEnd - 3), ...byteByByte(whole.subarray(headEnd - 3, headEnd)), whole.subarray(headEnd)];
    const used = pieces.map((p, i) => {
      const n = feed(parser, p);
      assert.equal(rec.heads.length, i >= 3 ? 1 : 0, `onHead after piece ${i}`);
      return n;
    });
    assertComplete({ parser, rec, used }, whole, { status: 200, body: b('body') }, 'spread');
  });

  test('a CRLF at the end of one piece and another at the start of the next is one terminator only when adjacent', () => {
    // "...\r\n" | "X-B: 2\r\n\r\n": the first piece's CRLF is not a terminator by itself.
    const text = 'HTTP/1.1 200 OK\r\nX-A: 1\r\nX-B: 2\r\nContent-Length: 0\r\n\r\n';
    const at = text.indexOf('X-B');
    const r = run([b(text.slice(0, at)), b(text.slice(at))]);
    assert.equal(r.rec.heads.length, 1);
    assert.deepEqual(r.rec.heads[0]!.headers, { 'x-a': '1', 'x-b': '2', 'content-length': '0' });
    assert.equal(r.rec.ends, 1);
  });
});

describe('interim 1xx answers', () => {
  const interim = 'HTTP/1.1 100 Continue\r\n\r\n';
  const final = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc';
  const whole = b(interim + final);

  test('100 Continue and the 200 in the same piece: onHead once, with 200', () => {
    const r = run([whole]);
    assertComplete(r, whole, { status: 200, body: b('abc') }, 'same piece');
    assert.deepEqual(r.rec.heads[0]!.headers, { 'content-length': '3' }, 'no header of the interim answer');
  });

  test('100 Continue and the 200 in separate pieces', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    const first = feed(parser, b(interim));
    assert.equal(first, interim.length);
    assert.equal(rec.heads.length, 0, 'no onHead for the interim answer');
    assert.equal(parser.busy, true);
    assert.equal(parser.finishOnEof(), false, 'an interim answer alone is incomplete');
    const second = feed(parser, b(final));
    assertComplete({ parser, rec, used: [first, second] }, whole, { status: 200, body: b('abc') }, 'separate');
  });

  test('split at every point', () => {
    for (const [at, pieces] of everySplit(whole)) {
      assertComplete(run(pieces), whole, { status: 200, body: b('abc') }, `split at ${at}`);
    }
  });

  test('several interim answers with headers (103 Early Hints, 102), then the final one byte by byte', () => {
    const text = 'HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n' + 'HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 1\r\n\r\nz';
    const whole1 = b(text);
    for (const [label, pieces] of [
      ['whole', [whole1]],
      ['byte by byte', byteByByte(whole1)],
    ] as const) {
      const r = run(pieces);
      assertComplete(r, whole1, { status: 200, body: b('z') }, label);
      assert.deepEqual(r.rec.heads[0]!.headers, { 'x-final': 'yes', 'content-length': '1' }, label);
    }
  });

  test('100 Continue before the answer to a HEAD request', () => {
    const text = b('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
    const r = run([text], 'HEAD');
    assertComplete(r, text, { status: 200, body: Buffer.alloc(0) }, 'HEAD');
  });
});

describe('answers without a body', () => {
  test('HEAD answered 200 with Content-Length: 1000: no body, onEnd right after onHead', () => {
    const text = b('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nETag: "x"\r\n\r\n');
    for (const [label, pieces] of [
      ['whole', [text]],
      ['byte by byte', byteByByte(text)],
    ] as const) {
      const r = run(pieces, 'HEAD');
      assertComplete(r, text, { status: 200, body: Buffer.alloc(0) }, label);
      assert.deepEqual(r.rec.log, ['head', 'end'], label);
      assert.equal(r.rec.heads[0]!.headers['content-length'], '1000');
    }
  });

  test('HEAD: the bytes after the head are not body bytes', () => {
    const headText = 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n';
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('HEAD');
    const used = feed(parser, b(`${headText}HTTP/1.1 200 OK\r\n`));
    assert.equal(used, headText.length);
    assert.deepEqual(rec.log, ['head', 'end']);
    assert.equal(parser.received, headText.length);
    assert.equal(parser.reusable, true);
  });

  test('HEAD answered with Transfer-Encoding: chunked has no body either', () => {
    const text = b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    const r = run([text], 'HEAD');
    assertComplete(r, text, { status: 200, body: Buffer.alloc(0) }, 'HEAD chunked');
  });

  test('HEAD answered 404 without any framing header: no body, and the connection stays reusable', () => {
    const text = b('HTTP/1.1 404 Not Found\r\n\r\n');
    const r = run([text], 'HEAD');
    assertComplete(r, text, { status: 404, body: Buffer.alloc(0) }, 'HEAD 404');
  });

  for (const [status, reason] of [
    [204, 'No Content'],
    [304, 'Not Modified'],
  ] as const) {
    test(`GET answered ${status}: no body, even with a Content-Length`, () => {
      for (const framing of ['', 'Content-Length: 1000\r\n']) {
        const headText = `HTTP/1.1 ${status} ${reason}\r\nETag: "x"\r\n${framing}\r\n`;
        const text = b(headText);
        const r = run([text]);
        assertComplete(r, text, { status, body: Buffer.alloc(0) }, `${status} ${JSON.stringify(framing)}`);
        assert.deepEqual(r.rec.log, ['head', 'end']);

        const r2 = run([b(`${headText}HTTP/1.1 200 OK\r\n\r\n`)]);
        assert.deepEqual(r2.used, [headText.length], `${status}: the next bytes are not ours`);
        assert.deepEqual(r2.rec.log, ['head', 'end']);
      }
    });
  }
});

describe('close-delimited body', () => {
  for (const version of ['1.1', '1.0']) {
    test(`HTTP/${version} without Content-Length or Transfer-Encoding: the body runs until the connection ends`, () => {
      const headText = `HTTP/${version} 200 OK\r\nContent-Type: text/plain\r\n\r\n`;
      const rec = recorder();
      const parser = parserFor(rec);
      parser.expect('GET');
      const pieces = [b(`${headText}abc`), b('def'), b('\r\n\r\n'), b('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')];
      for (const piece of pieces) assert.equal(feed(parser, piece), piece.length, 'everything until the end is body');
      assert.equal(rec.heads.length, 1);
      assert.equal(rec.heads[0]!.keepAlive, false, 'a close-delimited body never leaves the connection reusable');
      assert.equal(rec.ends, 0, 'no end before the connection ends');
      assert.equal(parser.busy, true);
      assert.equal(parser.reusable, false);
      assert.deepEqual(rec.body(), b('abcdef\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
      assert.equal(parser.received, sum(pieces.map((p) => p.length)));
      assert.equal(parser.finishOnEof(), true);
      assert.equal(rec.ends, 1);
      assert.equal(parser.busy, false);
      assert.equal(parser.reusable, false);
      assert.equal(rec.log[rec.log.length - 1], 'end');
    });
  }

  test('Connection: keep-alive does not make a close-delimited body reusable', () => {
    const r = run([b('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nxyz')]);
    assert.equal(r.rec.heads[0]!.keepAlive, false);
    assert.equal(r.parser.finishOnEof(), true);
    assert.equal(r.rec.ends, 1);
    assert.deepEqual(r.rec.body(), b('xyz'));
    assert.equal(r.parser.reusable, false);
  });

  test('an empty close-delimited body, the head split at every point', () => {
    const whole = b('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n');
    for (const [at, pieces] of everySplit(whole)) {
      const r = run(pieces);
      assert.equal(sum(r.used), whole.length, `split at ${at}`);
      assert.equal(r.rec.heads.length, 1);
      assert.equal(r.rec.ends, 0);
      assert.equal(r.parser.finishOnEof(), true);
      assert.equal(r.rec.ends, 1);
      assert.equal(r.rec.body().length, 0);
    }
  });
});

describe('keep-alive', () => {
  const cases: Array<[string, string, boolean]> = [
    ['1.1', '', true],
    ['1.1', 'Connection: close\r\n', false],
    ['1.1', 'Connection: CLOSE\r\n', false],
    ['1.1', 'Connection: foo,  close \r\n', false],
    ['1.1', 'Connection: keep-alive\r\nConnection: close\r\n', false],
    ['1.1', 'Connection: keep-alive\r\n', true],
    ['1.1', 'Connection: closed\r\n', true],
    ['1.0', '', false],
    ['1.0', 'Connection: close\r\n', false],
    ['1.0', 'Connection: keep-alive\r\n', true],
    ['1.0', 'Connection: Keep-Alive\r\n', true],
    ['1.0', 'Connection: foo, keep-alive\r\n', true],
    ['1.0', 'Connection: keep-alives\r\n', false],
  ];
  for (const [version, header, keepAlive] of cases) {
    test(`HTTP/${version} ${JSON.stringify(header)} → keepAlive ${keepAlive}`, () => {
      for (const framing of ['Content-Length: 2\r\n', 'Content-Length: 0\r\n']) {
        const body = framing.includes(' 2') ? 'ok' : '';
        const whole = b(`HTTP/${version} 200 OK\r\n${header}${framing}\r\n${body}`);
        const r = run([whole]);
        assertComplete(r, whole, { status: 200, body: b(body), keepAlive }, `${version} ${header} ${framing}`);
      }
    });
  }

  test('HTTP/1.1 chunked with Connection: close is complete but not reusable', () => {
    const whole = b('HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
    assertComplete(run([whole]), whole, { status: 200, body: b('ok'), keepAlive: false }, 'chunked close');
  });
});

describe('bytes after a complete answer', () => {
  const next = b('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnxt');

  for (const [label, text, body] of [
    ['Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', 'hello'],
    ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n', 'hello'],
    ['Content-Length: 0', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', ''],
    ['after 100 Continue', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi', 'hi'],
  ] as const) {
    test(`${label}: execute() returns exactly the answer's length`, () => {
      const answer = b(text);
      for (const extra of [b('x'), next, b('\r\n')]) {
        const rec = recorder();
        const parser = parserFor(rec);
        parser.expect('GET');
        const used = feed(parser, Buffer.concat([answer, extra]), 17);
        assert.equal(used, answer.length, `${label} + ${JSON.stringify(extra.toString('latin1'))}`);
        assert.equal(rec.heads.length, 1);
        assert.equal(rec.ends, 1);
        assert.deepEqual(rec.body(), b(body));
        assert.equal(parser.received, answer.length, 'received does not count the bytes after the answer');
        assert.equal(parser.busy, false);
        assert.equal(parser.reusable, true);
        // Once done, nothing more is taken.
        assert.equal(feed(parser, extra), 0);
        assert.equal(parser.received, answer.length);
        assert.equal(rec.heads.length, 1);
        assert.equal(rec.ends, 1);
      }
    });
  }

  test('the answer ends inside the second of two pieces', () => {
    const answer = b('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789');
    const all = Buffer.concat([answer, next]);
    for (let at = 1; at < answer.length; at++) {
      const r = run([all.subarray(0, at), all.subarray(at)]);
      assert.deepEqual(r.used, [at, answer.length - at], `split at ${at}`);
      assert.deepEqual(r.rec.body(), b('0123456789'));
      assert.equal(r.rec.ends, 1);
      assert.equal(r.parser.received, answer.length);
    }
  });

  test('execute() before any expect() takes nothing', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    assert.equal(feed(parser, next), 0);
    assert.equal(parser.received, 0);
    assert.deepEqual(rec.log, []);
  });
});

describe('finishOnEof', () => {
  test('true on a parser that never expected an answer, and after a complete one', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    assert.equal(parser.finishOnEof(), true);
    parser.expect('GET');
    feed(parser, b('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'));
    assert.equal(parser.finishOnEof(), true);
    assert.equal(rec.ends, 1);
  });

  test('false right after expect(), before any byte', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    assert.equal(parser.finishOnEof(), false);
    assert.equal(rec.ends, 0);
    assert.equal(parser.received, 0);
  });

  const incomplete: Array<[string, string]> = [
    ['inside the status line', 'HTTP/1.1 20'],
    ['inside a header', 'HTTP/1.1 200 OK\r\nContent-Len'],
    ['inside the terminator', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r'],
    ['in a Content-Length body', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel'],
    ['right after the head of a Content-Length body', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n'],
    ['before the first chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['in a chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r'],
    ['in chunk data', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhe'],
    ['in the CRLF after chunk data', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r'],
    ['after the last chunk', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n'],
    ['in the trailers', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-trailer: 1\r\n'],
  ];
  for (const [label, text] of incomplete) {
    test(`false ${label}`, () => {
      for (const [how, pieces] of [
        ['whole', [b(text)]],
        ['byte by byte', byteByByte(b(text))],
      ] as const) {
        const r = run(pieces);
        assert.equal(sum(r.used), text.length, how);
        assert.equal(r.parser.busy, true, how);
        assert.equal(r.parser.finishOnEof(), false, how);
        assert.equal(r.rec.ends, 0, `${how}: no onEnd for an incomplete answer`);
        assert.equal(r.parser.reusable, false, how);
        assert.equal(r.parser.received, text.length, how);
      }
    });
  }
});

describe('rejected answers', () => {
  test('both Transfer-Encoding and Content-Length', () => {
    for (const text of [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello',
      'HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: gzip\r\n\r\nhello',
    ]) {
      assertHeadRejected(text, /Transfer-Encoding and Content-Length/);
    }
  });

  test('an invalid Content-Length', () => {
    for (const value of ['abc', '-1', '1 2', '', '+5', '0x5', '5.0', '5a', '1e3', '1234567890123456']) {
      assertHeadRejected(`HTTP/1.1 200 OK\r\nContent-Length: ${value}\r\n\r\n`, /invalid Content-Length/);
    }
  });

  test('two differing Content-Length values, repeated or as a list', () => {
    for (const headers of ['Content-Length: 5\r\nContent-Length: 6\r\n', 'Content-Length: 5, 6\r\n', 'Content-Length: 5,5,6\r\n', 'Content-Length: 5,\r\n']) {
      assertHeadRejected(`HTTP/1.1 200 OK\r\n${headers}\r\nhello!`, /invalid Content-Length/);
    }
  });

  test('identical repeated Content-Length values are one length', () => {
    for (const headers of ['Content-Length: 5, 5\r\n', 'Content-Length: 5,5\r\n', 'Content-Length: 5\r\ncontent-length: 5\r\n']) {
      const whole = b(`HTTP/1.1 200 OK\r\n${headers}\r\nhello`);
      const r = run([Buffer.concat([whole, b('EXTRA')])]);
      assert.deepEqual(r.used, [whole.length], headers);
      assert.deepEqual(r.rec.body(), b('hello'), headers);
      assert.equal(r.rec.ends, 1, headers);
      assert.equal(r.parser.reusable, true, headers);
    }
  });

  test('obs-fold: a header line starting with a space or a tab', () => {
    assertHeadRejected('HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n');
    assertHeadRejected('HTTP/1.1 200 OK\r\nX-A: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n');
    assertHeadRejected('HTTP/1.1 200 OK\r\nX-A: one\r\n Content-Length: 5\r\n\r\nhello');
    // Whitespace between the status line and the first field (RFC 9112 §2.2).
    assertHeadRejected('HTTP/1.1 200 OK\r\n X-A: one\r\nContent-Length: 0\r\n\r\n');
  });

  test('a header line without a colon, or with an empty name', () => {
    assertHeadRejected('HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 0\r\n\r\n', /malformed header line/);
    assertHeadRejected('HTTP/1.1 200 OK\r\n: value\r\nContent-Length: 0\r\n\r\n', /malformed header line/);
  });

  test('invalid characters in a header name', () => {
    for (const name of ['bad name', 'Content-Length ', 'x\ty', 'a(b)', 'x"y', 'é', 'x/y', 'a@b', 'x\x00y']) {
      assertHeadRejected(`HTTP/1.1 200 OK\r\n${name}: x\r\nContent-Length: 0\r\n\r\n`, /malformed header/);
    }
  });

  test('a control character inside a header value', () => {
    for (const value of ['a\x01b', 'a\x00b', 'a\x7fb', 'a\x1bb', 'a\rb', 'a\nb', 'a\x0bb', 'a\x0cb']) {
      assertHeadRejected(`HTTP/1.1 200 OK\r\nX-Value: ${value}\r\nContent-Length: 0\r\n\r\n`, /control character/);
    }
  });

  test('a tab and obs-text inside a header value are accepted', () => {
    const whole = b('HTTP/1.1 200 OK\r\nX-Value: a\tb\xe9\xff\r\nContent-Length: 0\r\n\r\n');
    const r = run([whole]);
    assert.equal(r.rec.heads[0]!.headers['x-value'], 'a\tb\xe9\xff');
    assert.equal(r.rec.ends, 1);
  });

  // The value is trimmed with String.prototype.trim() before the control-character check; trim() strips
  // not only SP and HTAB (OWS) but also VT, FF, CR, LF and U+00A0 (latin1 byte 0xA0).

  test('VT or FF at the edge of a header value', () => {
    for (const value of ['\x0bfoo', 'foo\x0c', '\x0cfoo', 'foo\x0b']) {
      assertHeadRejected(`HTTP/1.1 200 OK\r\nX-Value: ${value}\r\nContent-Length: 0\r\n\r\n`, /control character/);
    }
  });

  test('a bare CR ending a header value', () => {
    assertHeadRejected('HTTP/1.1 200 OK\r\nX-Value: foo\r\r\nContent-Length: 0\r\n\r\n', /control character/);
    assertHeadRejected('HTTP/1.1 200 OK\r\nContent-Length: 5\r\r\n\r\nhello', /control character/);
  });

  test('a bare LF at the edge of a header value', () => {
    // Right after the colon: a reader taking bare LF as a line end sees a Content-Length field here.
    assertHeadRejected('HTTP/1.1 200 OK\r\nX-Smuggle:\nContent-Length: 5\r\n\r\nhello', /control character/);
    // Ending a value.
    assertHeadRejected('HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n\r\n', /control character/);
  });

  test('a header value ending in byte 0xA0 (raw UTF-8 such as "voilà" or "Р") keeps it', () => {
    for (const text of ['voilà', 'ПРИВЕТ МИР Р', '\u4e20']) {
      const raw = Buffer.from(text, 'utf8');
      assert.equal(raw[raw.length - 1], 0xa0);
      const whole = Buffer.concat([b('HTTP/1.1 200 OK\r\nX-Amz-Meta-Name: '), raw, b('\r\nContent-Length: 0\r\n\r\n')]);
      const r = run([whole]);
      assert.equal(r.rec.heads.length, 1);
      assert.deepEqual(b(r.rec.heads[0]!.headers['x-amz-meta-name'] as string), raw, `${text}: the value's bytes`);
    }
  });

  test('bare LF line ends in the head', () => {
    assertHeadRejected('HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n', /status line/);
    assertHeadRejected('HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n', /control character/);
  });

  test('not an HTTP/1.x status line', () => {
    for (const line of [
      'HTTP/2 200 OK',
      'FOO',
      'HTTP/1.2 200 OK',
      'HTTP/1.1  200 OK',
      'http/1.1 200 OK',
      'HTTP/1.1 20 OK',
      'HTTP/1.1 2000 OK',
      'HTTP/1.1 099 Nope',
      'HTTP/1.1 200OK',
      ' HTTP/1.1 200 OK',
      '',
      'ICY 200 OK',
    ]) {
      assertHeadRejected(`${line}\r\nContent-Length: 0\r\n\r\n`, /status line/);
    }
  });

  test('101 Switching Protocols', () => {
    assertHeadRejected('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n', /101/);
  });

  test('a head larger than MAX_HEAD_BYTES without a terminator, fed in pieces', () => {
    const piece = b(`X-Filler: ${'a'.repeat(4000)}\r\n`);
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    let fed = feed(parser, b('HTTP/1.1 200 OK\r\n'));
    assert.throws(
      () => {
        for (;;) {
          fed += feed(parser, piece);
          assert.ok(fed <= MAX_HEAD_BYTES + piece.length, `still accepted after ${fed} bytes`);
        }
      },
      (err: unknown) => err instanceof ResponseParseError && /larger than/.test(err.message),
    );
    assert.ok(fed > MAX_HEAD_BYTES - piece.length, `not rejected too early (${fed} bytes)`);
    assert.equal(rec.heads.length, 0);
  });

  test('a head larger than MAX_HEAD_BYTES with its terminator in the same piece', () => {
    const text = `HTTP/1.1 200 OK\r\nX-Filler: ${'a'.repeat(MAX_HEAD_BYTES)}\r\nContent-Length: 0\r\n\r\n`;
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    // Larger than the scratch buffer: given directly.
    assert.throws(() => parser.execute(b(text), 0, text.length), ResponseParseError);
    assert.equal(rec.heads.length, 0);
  });

  test('a head just under MAX_HEAD_BYTES is accepted', () => {
    const prefix = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Filler: ';
    const text = `${prefix}${'a'.repeat(MAX_HEAD_BYTES - prefix.length - 4)}\r\n\r\n`;
    assert.equal(text.length, MAX_HEAD_BYTES);
    const whole = b(text);
    const r = run([whole.subarray(0, 40_000), whole.subarray(40_000)]);
    assertComplete(r, whole, { status: 200, body: Buffer.alloc(0) }, 'near limit');
  });

  test(
    'a head of exactly MAX_HEAD_BYTES (before its CRLFCRLF) is accepted however it is split',
    () => {
      const prefix = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Filler: ';
      const text = `${prefix}${'a'.repeat(MAX_HEAD_BYTES - prefix.length)}\r\n\r\n`;
      const whole = b(text);
      assert.equal(whole.length, MAX_HEAD_BYTES + 4);
      // Given whole (too large for the scratch buffer: directly), it is accepted.
      const rec = recorder();
      const parser = parserFor(rec);
      parser.expect('GET');
      assert.equal(parser.execute(whole, 0, whole.length), whole.length);
      assert.equal(rec.ends, 1);
      // Cut inside its terminator, it should be too.
      for (const cut of [1, 2, 3]) {
        const at = MAX_HEAD_BYTES + cut;
        const r = run([whole.subarray(0, 40_000), whole.subarray(40_000, at), whole.subarray(at)]);
        assertComplete(r, whole, { status: 200, body: Buffer.alloc(0) }, `cut ${cut} into the terminator`);
      }
    },
  );

  test('a malformed chunk size', () => {
    for (const size of ['zz', '', '-5', ' 5', '0x5', '+5', '5 x', '12345678901234', 'g']) {
      const rec = assertParseError([b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\nhello\r\n0\r\n\r\n`)], 'GET', /malformed chunk size/);
      assert.equal(rec.heads.length, 1, 'the head itself was fine');
      assert.equal(rec.bodies.length, 0, `${JSON.stringify(size)}: no body bytes`);
    }
  });

  test(
    'a chunk size followed by a stray CR, VT or FF before its CRLF',
    () => {
      for (const size of ['5\r', '5\x0b', '5\x0c']) {
        const rec = assertParseError([b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${size}\r\nhello\r\n0\r\n\r\n`)], 'GET', /malformed chunk size/);
        assert.equal(rec.bodies.length, 0, `${JSON.stringify(size)}: no body bytes`);
      }
    },
  );

  test('a chunk-size line not ended by CRLF', () => {
    assertParseError([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n')], 'GET', /CRLF/);
    assertParseError(byteByByte(b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n')), 'GET', /CRLF/);
  });

  test('chunk data not followed by CRLF', () => {
    for (const text of [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\rX0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nhello\r\n0\r\n\r\n',
    ]) {
      for (const pieces of [[b(text)], byteByByte(b(text))]) {
        const rec = assertParseError(pieces, 'GET', /chunk data not followed by CRLF/);
        assert.equal(rec.heads.length, 1);
      }
    }
  });

  test('a trailer line not ended by CRLF', () => {
    assertParseError([b('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nx-trailer: 1\n\r\n')], 'GET', /trailer/);
  });

  test('a chunk-size line longer than 1 KiB', () => {
    const text = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;${'x'.repeat(2000)}\r\nhello\r\n0\r\n\r\n`;
    assertParseError([b(text)], 'GET', /too long/);
    // The same, arriving in small pieces.
    const pieces: Buffer[] = [];
    for (let at = 0; at < text.length; at += 100) pieces.push(b(text.slice(at, at + 100)));
    assertParseError(pieces, 'GET', /too long/);
  });

  test('Transfer-Encoding in an HTTP/1.0 answer', () => {
    assertHeadRejected('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', /HTTP\/1\.0/);
  });
});

describe('Transfer-Encoding whose last coding is not chunked', () => {
  for (const te of ['gzip', 'chunked, gzip', 'identity']) {
    test(`Transfer-Encoding: ${te} → close-delimited`, () => {
      const rec = recorder();
      const parser = parserFor(rec);
      parser.expect('GET');
      const first = b(`HTTP/1.1 200 OK\r\nTransfer-Encoding: ${te}\r\n\r\n5\r\nhello\r\n`);
      const second = b('0\r\n\r\nmore');
      assert.equal(feed(parser, first), first.length);
      assert.equal(feed(parser, second), second.length);
      assert.equal(rec.heads[0]!.keepAlive, false);
      assert.equal(rec.ends, 0);
      assert.equal(parser.busy, true);
      assert.equal(parser.finishOnEof(), true);
      assert.equal(rec.ends, 1);
      assert.deepEqual(rec.body(), b('5\r\nhello\r\n0\r\n\r\nmore'), 'the raw bytes, not de-chunked');
      assert.equal(parser.reusable, false);
    });
  }

  for (const headers of ['Transfer-Encoding: gzip, chunked\r\n', 'Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n']) {
    test(`${JSON.stringify(headers)} → chunked`, () => {
      const whole = b(`HTTP/1.1 200 OK\r\n${headers}\r\n5\r\nhello\r\n0\r\n\r\n`);
      assertComplete(run([whole]), whole, { status: 200, body: b('hello') }, headers);
    });
  }
});

describe('one parser for several answers', () => {
  test('Content-Length, then chunked, then HEAD, then close-delimited on the same parser', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    const a1 = b('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst');
    const a2 = b('HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nsecond\r\n0\r\n\r\n');
    const a3 = b('HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n');
    const a4 = b('HTTP/1.1 200 OK\r\n\r\nfourth');
    const all = Buffer.concat([a1, a2, a3, a4]);

    // The first answer and the start of the second arrive together.
    parser.expect('GET');
    const cut = a1.length + 10;
    assert.equal(feed(parser, all.subarray(0, cut)), a1.length);
    assert.equal(parser.received, a1.length);
    assert.equal(rec.ends, 1);
    assert.deepEqual(rec.body(), b('first'));
    assert.equal(parser.reusable, true);

    // The caller hands the leftover to the next answer.
    rec.bodies.length = 0;
    parser.expect('GET');
    assert.equal(parser.received, 0, 'received restarts with each answer');
    assert.equal(parser.busy, true);
    assert.equal(parser.reusable, false, 'not reusable while the next answer is expected');
    let used = feed(parser, all.subarray(a1.length, cut));
    assert.equal(used, 10);
    assert.equal(parser.received, 10);
    used += feed(parser, all.subarray(cut, a1.length + a2.length + 3));
    assert.equal(used, a2.length);
    assert.equal(parser.received, a2.length);
    assert.equal(rec.heads.length, 2);
    assert.equal(rec.heads[1]!.status, 206);
    assert.equal(rec.ends, 2);
    assert.deepEqual(rec.body(), b('second'));
    assert.equal(parser.reusable, true);

    rec.bodies.length = 0;
    parser.expect('HEAD');
    const off3 = a1.length + a2.length;
    assert.equal(feed(parser, all.subarray(off3, off3 + 3)), 3);
    assert.equal(feed(parser, all.subarray(off3 + 3)), a3.length - 3);
    assert.equal(parser.received, a3.length);
    assert.equal(rec.heads.length, 3);
    assert.equal(rec.ends, 3);
    assert.equal(rec.bodies.length, 0);

    parser.expect('GET');
    const off4 = off3 + a3.length;
    assert.equal(feed(parser, all.subarray(off4)), a4.length);
    assert.equal(parser.received, a4.length);
    assert.equal(rec.ends, 3);
    assert.equal(parser.finishOnEof(), true);
    assert.equal(rec.ends, 4);
    assert.deepEqual(rec.body(), b('fourth'));
    assert.equal(parser.reusable, false);
    assert.deepEqual(
      rec.heads.map((h) => h.status),
      [200, 206, 200, 200],
    );
  });

  test('a HEAD answer followed by a GET answer with a body: the first expect does not leak into the second', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('HEAD');
    const head = b('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n');
    assert.equal(feed(parser, head), head.length);
    assert.equal(rec.bodies.length, 0);
    parser.expect('GET');
    const get = b('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndata');
    assert.equal(feed(parser, get), get.length);
    assert.deepEqual(rec.body(), b('data'), 'the GET answer has its body');
    assert.equal(rec.ends, 2);
  });

  test('an answer cut inside its head, then a new expect(): the old head is forgotten', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    feed(parser, b('HTTP/1.1 500 Internal'));
    parser.expect('GET');
    const whole = b('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    assert.equal(feed(parser, whole), whole.length);
    assert.equal(rec.heads.length, 1);
    assert.equal(rec.heads[0]!.status, 200);
    assert.deepEqual(rec.body(), b('ok'));
  });

  test('a connection closing a keep-alive answer early: received tells whether anything arrived', () => {
    const rec = recorder();
    const parser = parserFor(rec);
    parser.expect('GET');
    feed(parser, b('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'));
    parser.expect('GET');
    assert.equal(parser.finishOnEof(), false);
    assert.equal(parser.received, 0, 'nothing of the second answer: a stale connection');
    feed(parser, b('HTTP/1.1'));
    assert.equal(parser.finishOnEof(), false);
    assert.equal(parser.received, 8);
  });
});
