// RFC 9110 behaviour through Karasu over real HTTP: ranges, conditionals, header fidelity, HEAD,
// methods, CORS and request ids. s3rver gets suffix ranges, 416s and If-Match wrong (PRODUCT §9):
// these tests state what S3 does, which Karasu must deliver whatever the backend.
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { request, type HttpResponse } from '../helpers/http.js';
import { assertErrorJson, karasuYaml, startKarasuYaml, type KarasuUnderTest } from '../helpers/karasu.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'backend-media-q9';
const DATA = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 37 + 11) % 256));
const GZ = gzipSync('a compressed body, served as stored');
const EXPIRES = 'Wed, 01 Jan 2031 00:00:00 GMT';

let s3: S3Handle;
let karasu: KarasuUnderTest;
let etag: string;
let lastModified: string;

before(async () => {
  s3 = await startS3({
    buckets: {
      [BACKEND]: {
        'data.bin': DATA,
        'empty.txt': '',
        'rich.txt.gz': {
          body: GZ,
          contentType: 'text/plain; charset=utf-8',
          metadata: { owner: 'Alice', 'trace-id': 'abc-123' },
          cacheControl: 'public, max-age=60',
          contentDisposition: 'attachment; filename="rich.txt"',
          contentEncoding: 'gzip',
          contentLanguage: 'en-GB',
          expires: EXPIRES,
        },
      },
    },
  });
  karasu = await startKarasuYaml(
    karasuYaml({
      buckets: [
        { name: 'media', prefix: '/media', endpoint: s3.endpoint, bucket: BACKEND },
        {
          name: 'cors',
          prefix: '/cors',
          endpoint: s3.endpoint,
          bucket: BACKEND,
          extra: { cors: { allowed_origins: ['https://app.example'], expose_headers: ['X-Amz-Meta-Owner'], max_age_seconds: 300 } },
        },
        { name: 'wild', prefix: '/wild', endpoint: s3.endpoint, bucket: BACKEND, extra: { cors: { allowed_origins: ['*'] } } },
      ],
    }),
  );
  const first = await request(`${karasu.url}/media/data.bin`);
  etag = String(first.headers.etag);
  lastModified = String(first.headers['last-modified']);
});

after(async () => {
  await karasu?.stop();
  await s3?.stop();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
  request(karasu.url + path, { method, headers });

function assertPartial(res: HttpResponse, start: number, end: number) {
  assert.equal(res.status, 206, `status for ${start}-${end}: ${res.body.toString().slice(0, 200)}`);
  assert.equal(res.headers['content-range'], `bytes ${start}-${end}/${DATA.length}`);
  assert.equal(res.headers['content-length'], String(end - start + 1));
  assert.equal(res.headers['accept-ranges'], 'bytes');
  assert.deepEqual(res.body, DATA.subarray(start, end + 1));
  assert.equal(res.headers.etag, etag);
  assert.ok(res.headers['x-request-id']);
}

function assertFull(res: HttpResponse) {
  assert.equal(res.status, 200, res.body.toString().slice(0, 200));
  assert.equal(res.headers['content-range'], undefined);
  assert.equal(res.headers['content-length'], String(DATA.length));
  assert.equal(res.headers['accept-ranges'], 'bytes');
  assert.deepEqual(res.body, DATA);
}

describe('Range', () => {
  test('bytes=0-9 → 206 with Content-Range and exactly those bytes', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=0-9' }), 0, 9);
  });

  test('a middle range and a one-byte range', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=40-59' }), 40, 59);
    assertPartial(await get('/media/data.bin', { range: 'bytes=99-99' }), 99, 99);
    assertPartial(await get('/media/data.bin', { range: 'bytes=-1' }), 99, 99);
  });

  // s3rver answers bytes=0-0 with the whole object (206 bytes 0-99/100).
  test('bytes=0-0 → 206 with the first byte', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=0-0' }), 0, 0);
  });

  test('open-ended bytes=5- → 206 to the end', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=5-' }), 5, 99);
  });

  test('suffix bytes=-5 → the LAST five bytes', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=-5' }), 95, 99);
  });

  test('suffix longer than the object → the whole object as 206', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=-500' }), 0, 99);
  });

  test('bytes=0- → 206 (not 200)', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=0-' }), 0, 99);
  });

  test('an end past the size is clamped', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=90-1000' }), 90, 99);
  });

  test('unsatisfiable → 416 with Content-Range: bytes */N', async () => {
    for (const range of ['bytes=100-200', 'bytes=100-', 'bytes=5000-6000', 'bytes=-0']) {
      const res = await get('/media/data.bin', { range });
      assertErrorJson(res, 416, undefined, [BACKEND]);
      assert.equal(res.headers['content-range'], `bytes */${DATA.length}`, range);
    }
  });

  // s3rver answers a range of an empty object with a broken 206 (no Content-Range, Content-Length 1, then
  // the connection drops).
  test('any range of an empty object is unsatisfiable: 416 bytes */0', async () => {
    const res = await get('/media/empty.txt', { range: 'bytes=0-' });
    assertErrorJson(res, 416);
    assert.equal(res.headers['content-range'], 'bytes */0');
  });

  test('malformed, reversed, multi-range and other units → 200 with the full body', async () => {
    for (const range of ['bytes=abc', 'bytes=5-2', 'bytes=0-1,5-6', 'items=0-5', 'bytes=--1', 'bytes=', '0-5']) {
      const res = await get('/media/data.bin', { range });
      assertFull(res);
    }
  });

  test('HEAD ignores Range', async () => {
    const res = await get('/media/data.bin', { range: 'bytes=0-9' }, 'HEAD');
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(DATA.length));
    assert.equal(res.headers['content-range'], undefined);
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.equal(res.body.length, 0);
  });
});

describe('conditional requests', () => {
  function assertNotModified(res: HttpResponse) {
    assert.equal(res.status, 304, res.body.toString().slice(0, 200));
    assert.equal(res.body.length, 0);
    assert.equal(res.headers.etag, etag);
    assert.ok(res.headers['x-request-id']);
  }

  test('the ETag is quoted and is S3’s own', async () => {
    assert.match(etag, /^"[0-9a-f]{32}"$/);
    const direct = await request(`${s3.endpoint}/${BACKEND}/data.bin`);
    assert.equal(etag, direct.headers.etag);
    assert.equal(lastModified, direct.headers['last-modified']);
  });

  test('If-None-Match exact, weak, in a list, and * → 304 without a body', async () => {
    for (const inm of [etag, `W/${etag}`, `"nope", ${etag}`, `"a",W/${etag} , "b"`, '*']) {
      assertNotModified(await get('/media/data.bin', { 'if-none-match': inm }));
    }
    assertNotModified(await get('/media/data.bin', { 'if-none-match': etag }, 'HEAD'));
  });

  test('If-None-Match not matching → 200', async () => {
    assertFull(await get('/media/data.bin', { 'if-none-match': '"0123"' }));
    assertFull(await get('/media/data.bin', { 'if-none-match': `"x${etag.slice(1)}` }));
  });

  test('If-Modified-Since: a future date or the Last-Modified itself → 304; a past date → 200', async () => {
    const future = new Date(Date.now() + 86_400_000).toUTCString();
    assertNotModified(await get('/media/data.bin', { 'if-modified-since': future }));
    assertNotModified(await get('/media/data.bin', { 'if-modified-since': lastModified }));
    assertFull(await get('/media/data.bin', { 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' }));
    // Not a date: ignored.
    assertFull(await get('/media/data.bin', { 'if-modified-since': 'yesterday' }));
  });

  test('If-None-Match takes precedence over If-Modified-Since', async () => {
    const future = new Date(Date.now() + 86_400_000).toUTCString();
    assertFull(await get('/media/data.bin', { 'if-none-match': '"other"', 'if-modified-since': future }));
  });

  test('If-Match with a wrong ETag → 412 (s3rver alone would answer 200)', async () => {
    const res = await get('/media/data.bin', { 'if-match': '"0123456789abcdef0123456789abcdef"' });
    assertErrorJson(res, 412, 'PreconditionFailed', [BACKEND]);
    assertErrorJson(await get('/media/data.bin', { 'if-match': `W/${etag}` }), 412);
  });

  test('If-Match right (or *) → 200', async () => {
    assertFull(await get('/media/data.bin', { 'if-match': etag }));
    assertFull(await get('/media/data.bin', { 'if-match': `"other", ${etag}` }));
    assertFull(await get('/media/data.bin', { 'if-match': '*' }));
  });

  test('If-Unmodified-Since: past → 412, future → 200', async () => {
    assertErrorJson(await get('/media/data.bin', { 'if-unmodified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' }), 412);
    assertFull(await get('/media/data.bin', { 'if-unmodified-since': new Date(Date.now() + 86_400_000).toUTCString() }));
  });

  test('If-Range with the current ETag (or Last-Modified) → 206; with another → 200 full', async () => {
    assertPartial(await get('/media/data.bin', { range: 'bytes=0-9', 'if-range': etag }), 0, 9);
    assertPartial(await get('/media/data.bin', { range: 'bytes=-5', 'if-range': etag }), 95, 99);
    assertPartial(await get('/media/data.bin', { range: 'bytes=10-19', 'if-range': lastModified }), 10, 19);
    assertFull(await get('/media/data.bin', { range: 'bytes=0-9', 'if-range': '"0123456789abcdef0123456789abcdef"' }));
    // A weak validator never matches If-Range.
    assertFull(await get('/media/data.bin', { range: 'bytes=0-9', 'if-range': `W/${etag}` }));
    assertFull(await get('/media/data.bin', { range: 'bytes=0-9', 'if-range': 'Thu, 01 Jan 1970 00:00:00 GMT' }));
  });

  test('a matching If-None-Match wins over Range', async () => {
    assertNotModified(await get('/media/data.bin', { range: 'bytes=0-9', 'if-none-match': etag }));
  });
});

describe('header fidelity', () => {
  test('object headers and x-amz-meta-* are forwarded as S3 stored them', async () => {
    const res = await get('/media/rich.txt.gz');
    const direct = await request(`${s3.endpoint}/${BACKEND}/rich.txt.gz`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, GZ, 'the encoded body passes through untouched');
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(res.headers['content-length'], String(GZ.length));
    assert.equal(res.headers['cache-control'], 'public, max-age=60');
    assert.equal(res.headers['content-disposition'], 'attachment; filename="rich.txt"');
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(res.headers['content-language'], 'en-GB');
    assert.equal(res.headers.expires, EXPIRES);
    assert.equal(res.headers['x-amz-meta-owner'], 'Alice');
    assert.equal(res.headers['x-amz-meta-trace-id'], 'abc-123');
    assert.equal(res.headers.etag, direct.headers.etag);
    assert.match(String(res.headers.etag), /^"[0-9a-f]{32}"$/);
    assert.equal(res.headers['last-modified'], direct.headers['last-modified']);
    assert.equal(res.headers['accept-ranges'], 'bytes');
  });

  test('a 206 carries the same object headers', async () => {
    const res = await get('/media/rich.txt.gz', { range: 'bytes=0-3' });
    assert.equal(res.status, 206);
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(res.headers['x-amz-meta-owner'], 'Alice');
    assert.equal(res.headers['cache-control'], 'public, max-age=60');
    assert.deepEqual(res.body, GZ.subarray(0, 4));
  });

  test('HEAD: same headers as GET, no body', async () => {
    const res = await get('/media/rich.txt.gz', {}, 'HEAD');
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
    assert.equal(res.headers['content-length'], String(GZ.length));
    assert.equal(res.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(res.headers['x-amz-meta-owner'], 'Alice');
    assert.equal(res.headers['accept-ranges'], 'bytes');
    assert.match(String(res.headers.etag), /^"[0-9a-f]{32}"$/);
    const empty = await get('/media/empty.txt', {}, 'HEAD');
    assert.equal(empty.status, 200);
    assert.equal(empty.headers['content-length'], '0');
  });

  test('HEAD of a missing object → 404 without a body, with X-Request-Id', async () => {
    const res = await get('/media/missing', {}, 'HEAD');
    assert.equal(res.status, 404);
    assert.equal(res.body.length, 0);
    assert.ok(res.headers['x-request-id']);
  });

  test('a 304 keeps ETag, Last-Modified, Cache-Control and Expires', async () => {
    const full = await get('/media/rich.txt.gz');
    const res = await get('/media/rich.txt.gz', { 'if-none-match': String(full.headers.etag) });
    assert.equal(res.status, 304);
    assert.equal(res.headers.etag, full.headers.etag);
    assert.equal(res.headers['last-modified'], full.headers['last-modified']);
    assert.equal(res.headers['cache-control'], 'public, max-age=60');
    assert.equal(res.headers.expires, EXPIRES);
  });
});

describe('methods', () => {
  const assert405 = (res: HttpResponse) => {
    assertErrorJson(res, 405, 'MethodNotAllowed', [BACKEND]);
    const allow = String(res.headers.allow).split(/\s*,\s*/).sort();
    assert.deepEqual(allow, ['GET', 'HEAD', 'OPTIONS']);
  };

  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    test(`${method} → 405 with Allow`, async () => {
      for (const path of ['/media/data.bin', '/nowhere/x']) assert405(await request(karasu.url + path, { method }));
    });
  }

  // Fastify would parse the body before the route handler runs (415 for an unknown type, 400 for bad JSON).
  test('POST/PUT/PATCH with a body (any content type) → 405, the body is not parsed', async () => {
    const bodies: Array<[string, Record<string, string>]> = [
      ['x', {}],
      ['x', { 'content-type': 'application/octet-stream' }],
      ['a=1', { 'content-type': 'application/x-www-form-urlencoded' }],
      ['not json', { 'content-type': 'application/json' }],
    ];
    for (const method of ['POST', 'PUT', 'PATCH']) {
      for (const [body, headers] of bodies) assert405(await request(`${karasu.url}/media/data.bin`, { method, body, headers }));
    }
  });

  test('405 does not touch the object', async () => {
    await request(`${karasu.url}/media/data.bin`, { method: 'DELETE' });
    assertFull(await get('/media/data.bin'));
  });
});

describe('CORS', () => {
  const ORIGIN = 'https://app.example';
  const headerList = (v: unknown) => String(v ?? '').toLowerCase().split(/\s*,\s*/);

  test('preflight from an allowed origin', async () => {
    const res = await get('/cors/data.bin', { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' }, 'OPTIONS');
    assert.ok(res.status === 200 || res.status === 204, `status ${res.status}`);
    assert.equal(res.headers['access-control-allow-origin'], ORIGIN);
    assert.ok(headerList(res.headers.vary).includes('origin'));
    assert.ok(headerList(res.headers['access-control-allow-methods']).includes('get'));
    assert.ok(headerList(res.headers['access-control-allow-headers']).includes('range'));
    assert.equal(res.headers['access-control-max-age'], '300');
    assert.ok(res.headers['x-request-id']);
    assert.equal(res.body.length, 0);
  });

  test('preflight from another origin gets no CORS grant', async () => {
    const res = await get('/cors/data.bin', { origin: 'https://evil.example', 'access-control-request-method': 'GET' }, 'OPTIONS');
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal(res.headers['access-control-allow-methods'], undefined);
    assert.equal(res.headers['access-control-allow-credentials'], undefined);
  });

  test('GET from an allowed origin: Allow-Origin, Vary: Origin, ETag/Content-Range/Accept-Ranges exposed', async () => {
    const variants: Array<Record<string, string>> = [{ origin: ORIGIN }, { origin: ORIGIN, range: 'bytes=0-9' }];
    for (const headers of variants) {
      const res = await get('/cors/data.bin', headers);
      assert.ok(res.status === 200 || res.status === 206);
      assert.equal(res.headers['access-control-allow-origin'], ORIGIN);
      assert.ok(headerList(res.headers.vary).includes('origin'));
      const exposed = headerList(res.headers['access-control-expose-headers']);
      for (const h of ['etag', 'content-range', 'accept-ranges', 'x-amz-meta-owner']) assert.ok(exposed.includes(h), `${h} exposed: ${exposed}`);
    }
  });

  test('errors and 304s for an allowed origin are readable by the page too', async () => {
    const missing = await get('/cors/missing', { origin: ORIGIN });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers['access-control-allow-origin'], ORIGIN);
    const notModified = await get('/cors/data.bin', { origin: ORIGIN, 'if-none-match': etag });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.headers['access-control-allow-origin'], ORIGIN);
  });

  test('GET from another origin: no Allow-Origin, still Vary: Origin', async () => {
    const res = await get('/cors/data.bin', { origin: 'https://evil.example' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.equal(res.headers['access-control-expose-headers'], undefined);
    assert.ok(headerList(res.headers.vary).includes('origin'));
  });

  test('"*" origins answer with *', async () => {
    const res = await get('/wild/data.bin', { origin: 'https://anyone.example' });
    assert.equal(res.headers['access-control-allow-origin'], '*');
  });

  test('a bucket without cors grants nothing', async () => {
    const res = await get('/media/data.bin', { origin: ORIGIN });
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    const pre = await get('/media/data.bin', { origin: ORIGIN, 'access-control-request-method': 'GET' }, 'OPTIONS');
    assert.equal(pre.headers['access-control-allow-origin'], undefined);
  });
});

describe('X-Request-Id', () => {
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  test('present on every kind of response, and distinct per request', async () => {
    const seen = new Set<string>();
    const cases: Array<[string, Record<string, string>, string]> = [
      ['/media/data.bin', {}, 'GET'],
      ['/media/data.bin', { range: 'bytes=0-1' }, 'GET'],
      ['/media/data.bin', { 'if-none-match': etag }, 'GET'],
      ['/media/data.bin', { range: 'bytes=500-' }, 'GET'],
      ['/media/data.bin', {}, 'HEAD'],
      ['/media/missing', {}, 'GET'],
      ['/nowhere/x', {}, 'GET'],
      ['/media/data.bin', {}, 'POST'],
      ['/cors/data.bin', { origin: 'https://app.example' }, 'OPTIONS'],
    ];
    for (const [path, headers, method] of cases) {
      const res = await get(path, headers, method);
      const id = res.headers['x-request-id'];
      assert.ok(typeof id === 'string' && id.length > 0, `${method} ${path} → ${res.status} has X-Request-Id`);
      seen.add(id);
    }
    assert.equal(seen.size, cases.length);
  });

  test('a sane incoming X-Request-Id is honoured, in the header and the error body', async () => {
    const id = 'req-42_abc.DEF:9';
    const ok = await get('/media/data.bin', { 'x-request-id': id });
    assert.equal(ok.headers['x-request-id'], id);
    const err = await get('/media/missing', { 'x-request-id': id });
    assert.equal(assertErrorJson(err, 404).request_id, id);
  });

  test('X-Correlation-ID is honoured when there is no X-Request-Id', async () => {
    const res = await get('/media/data.bin', { 'x-correlation-id': 'corr-7' });
    assert.equal(res.headers['x-request-id'], 'corr-7');
    const both = await get('/media/data.bin', { 'x-request-id': 'rid-1', 'x-correlation-id': 'corr-7' });
    assert.equal(both.headers['x-request-id'], 'rid-1');
  });

  test('an insane incoming id is replaced', async () => {
    for (const bad of ['has space', 'a'.repeat(200), '<script>', 'x"y', 'é']) {
      const res = await get('/media/data.bin', { 'x-request-id': Buffer.from(bad).toString('latin1') });
      const id = String(res.headers['x-request-id']);
      assert.notEqual(id, bad);
      assert.match(id, UUID);
    }
  });
});
