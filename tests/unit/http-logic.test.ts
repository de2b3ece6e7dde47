import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  contentRangeHeader,
  parseContentRange,
  parseRange,
  parseUnsatisfiedRange,
  resolveRange,
} from '../../src/http/range.js';
import { evaluatePreconditions, ifRangeAllows, quoteEtag } from '../../src/http/conditional.js';
import { buildRouter } from '../../src/routing/router.js';
import { HttpError } from '../../src/http/errors.js';
import { requestIdFrom } from '../../src/http/request-id.js';

describe('Range', () => {
  it('parses single, open-ended and suffix specs', () => {
    assert.deepEqual(parseRange('bytes=0-9'), { kind: 'from', start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=5-'), { kind: 'from', start: 5, end: null });
    assert.deepEqual(parseRange('bytes=-5'), { kind: 'suffix', length: 5 });
    assert.deepEqual(parseRange('BYTES= 1 - 2 '), { kind: 'from', start: 1, end: 2 });
  });

  it('ignores absent, malformed, inverted, multi-range and other units (→ 200)', () => {
    for (const header of [undefined, '', 'bytes=', 'bytes=-', 'bytes=9-1', 'bytes=0-1,3-4', 'items=0-1', 'bytes=a-b', 'bytes=0-99999999999999999999']) {
      assert.equal(parseRange(header), null, String(header));
    }
  });

  it('resolves against the size: clamps the end, suffix from the end, unsatisfiable → null', () => {
    assert.deepEqual(resolveRange({ kind: 'from', start: 0, end: null }, 10), { start: 0, end: 9 });
    assert.deepEqual(resolveRange({ kind: 'from', start: 5, end: 100 }, 10), { start: 5, end: 9 });
    assert.deepEqual(resolveRange({ kind: 'suffix', length: 3 }, 10), { start: 7, end: 9 });
    assert.deepEqual(resolveRange({ kind: 'suffix', length: 30 }, 10), { start: 0, end: 9 });
    assert.equal(resolveRange({ kind: 'from', start: 10, end: null }, 10), null);
    assert.equal(resolveRange({ kind: 'suffix', length: 0 }, 10), null);
    assert.equal(resolveRange({ kind: 'from', start: 0, end: 0 }, 0), null);
    assert.equal(resolveRange({ kind: 'suffix', length: 5 }, 0), null);
  });

  it('reads and writes Content-Range', () => {
    assert.equal(contentRangeHeader({ start: 2, end: 4 }, 10), 'bytes 2-4/10');
    assert.deepEqual(parseContentRange('bytes 2-4/10'), { start: 2, end: 4, size: 10 });
    assert.deepEqual(parseContentRange('bytes 2-4/*'), { start: 2, end: 4, size: null });
    assert.equal(parseContentRange('bytes 4-2/10'), null);
    assert.equal(parseContentRange('bytes 0-10/10'), null);
    assert.equal(parseContentRange(undefined), null);
    assert.equal(parseUnsatisfiedRange('bytes */77'), 77);
    assert.equal(parseUnsatisfiedRange('bytes 0-1/77'), null);
  });
});

describe('conditional requests (RFC 9110 §13.2.2)', () => {
  const v = { etag: '"abc"', lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT' };
  const before = 'Tue, 20 Oct 2015 07:28:00 GMT';
  const after = 'Thu, 22 Oct 2015 07:28:00 GMT';

  it('If-None-Match uses weak comparison and lists; * matches any', () => {
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"abc"' }, v), 'not-modified');
    assert.equal(evaluatePreconditions({ ifNoneMatch: 'W/"abc"' }, v), 'not-modified');
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"x", "abc"' }, v), 'not-modified');
    assert.equal(evaluatePreconditions({ ifNoneMatch: '*' }, v), 'not-modified');
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"other"' }, v), 'proceed');
  });

  it('If-Modified-Since compares dates and is ignored when If-None-Match is present', () => {
    assert.equal(evaluatePreconditions({ ifModifiedSince: after }, v), 'not-modified');
    assert.equal(evaluatePreconditions({ ifModifiedSince: v.lastModified }, v), 'not-modified');
    assert.equal(evaluatePreconditions({ ifModifiedSince: before }, v), 'proceed');
    assert.equal(evaluatePreconditions({ ifModifiedSince: 'not a date' }, v), 'proceed');
    assert.equal(evaluatePreconditions({ ifNoneMatch: '"other"', ifModifiedSince: after }, v), 'proceed');
  });

  it('If-Match uses strong comparison; If-Unmodified-Since is ignored when If-Match is present', () => {
    assert.equal(evaluatePreconditions({ ifMatch: '"abc"' }, v), 'proceed');
    assert.equal(evaluatePreconditions({ ifMatch: '*' }, v), 'proceed');
    assert.equal(evaluatePreconditions({ ifMatch: '"nope"' }, v), 'failed');
    assert.equal(evaluatePreconditions({ ifMatch: '"abc"' }, { ...v, etag: 'W/"abc"' }), 'failed');
    assert.equal(evaluatePreconditions({ ifUnmodifiedSince: before }, v), 'failed');
    assert.equal(evaluatePreconditions({ ifUnmodifiedSince: after }, v), 'proceed');
    assert.equal(evaluatePreconditions({ ifMatch: '"abc"', ifUnmodifiedSince: before }, v), 'proceed');
    assert.equal(evaluatePreconditions({ ifMatch: '"abc"' }, { etag: null, lastModified: null }), 'failed');
  });

  it('If-Range: strong ETag or exact date', () => {
    assert.equal(ifRangeAllows(undefined, v), true);
    assert.equal(ifRangeAllows('"abc"', v), true);
    assert.equal(ifRangeAllows('W/"abc"', v), false);
    assert.equal(ifRangeAllows('"zzz"', v), false);
    assert.equal(ifRangeAllows(v.lastModified, v), true);
    assert.equal(ifRangeAllows(before, v), false);
  });

  it('quotes bare ETags once', () => {
    assert.equal(quoteEtag('abc'), '"abc"');
    assert.equal(quoteEtag('"abc"'), '"abc"');
    assert.equal(quoteEtag('W/"abc"'), 'W/"abc"');
    assert.equal(quoteEtag(undefined), null);
  });
});

describe('router', () => {
  const router = buildRouter([
    ['/products', 'products'],
    ['/products/images', 'images'],
    ['/a b', 'spaced'],
  ] as const);
  const route = (path: string) => router.match(path);
  const status = (path: string) => {
    try {
      route(path);
      return 200;
    } catch (err) {
      return (err as HttpError).status;
    }
  };

  it('takes the longest prefix on a segment boundary', () => {
    assert.deepEqual(route('/products/x.png'), { target: 'products', key: 'x.png' });
    assert.deepEqual(route('/products/images/x.png'), { target: 'images', key: 'x.png' });
    assert.deepEqual(route('/products/imagesX/x.png'), { target: 'products', key: 'imagesX/x.png' });
    assert.equal(status('/productsX/x.png'), 404);
    assert.equal(status('/products'), 404);
    assert.equal(status('/products/'), 404);
  });

  it('decodes the key exactly once', () => {
    assert.equal(route('/products/a%20b').key, 'a b');
    assert.equal(route('/products/%2541').key, '%41');
    assert.equal(route('/products/dir/%E6%97%A5.txt').key, 'dir/日.txt');
  });

  it('refuses traversal, NUL and bad encoding with 400', () => {
    for (const path of ['/products/../x', '/products/%2e%2e/x', '/../products/x', '/products/a/..', '/products/%00', '/products/%zz', '/products/a%5C..%5Cb']) {
      assert.equal(status(path), 400, path);
    }
    assert.equal(route('/products/a..b').key, 'a..b');
  });

  it('serves a root prefix as the fallback', () => {
    const withRoot = buildRouter([['/', 'root'], ['/x', 'x']] as const);
    assert.deepEqual(withRoot.match('/y/z'), { target: 'root', key: 'y/z' });
    assert.deepEqual(withRoot.match('/x/z'), { target: 'x', key: 'z' });
  });
});

describe('request ids', () => {
  it('honours sane incoming ids and replaces others', () => {
    assert.equal(requestIdFrom({ 'x-request-id': 'abc-123' }), 'abc-123');
    assert.equal(requestIdFrom({ 'x-correlation-id': 'corr.1' }), 'corr.1');
    assert.match(requestIdFrom({ 'x-request-id': 'bad id with spaces' }), /^[0-9a-f-]{36}$/);
    assert.match(requestIdFrom({ 'x-request-id': 'x'.repeat(200) }), /^[0-9a-f-]{36}$/);
    assert.match(requestIdFrom({}), /^[0-9a-f-]{36}$/);
  });
});

describe('S3 object key encoding', async () => {
  const { encodeKey } = await import('../../src/upstream/s3-transport.js');
  it('keeps / between segments and RFC 3986 unreserved characters, encodes the rest once', () => {
    assert.equal(encodeKey('a/b c/d.txt'), '/a/b%20c/d.txt');
    assert.equal(encodeKey("x!'()*+=&%.txt"), '/x%21%27%28%29%2A%2B%3D%26%25.txt');
    assert.equal(encodeKey('日本/ü'), '/%E6%97%A5%E6%9C%AC/%C3%BC');
    assert.equal(encodeKey('a~b-c_d.e'), '/a~b-c_d.e');
  });
});

describe('Cache-Control for token-protected responses', async () => {
  const { privateOnly } = await import('../../src/respond/respond.js');
  it('keeps browser caching, forbids shared caches', () => {
    assert.equal(privateOnly(undefined), 'private');
    assert.equal(privateOnly('public, max-age=60, s-maxage=600'), 'private, max-age=60');
    assert.equal(privateOnly('max-age=0, must-revalidate'), 'private, max-age=0, must-revalidate');
    assert.equal(privateOnly('private'), 'private');
    assert.equal(privateOnly('no-cache, proxy-revalidate'), 'private, no-cache');
  });
});
