// Routing (longest prefix on a segment boundary, key decoding) and request hardening, over real HTTP.
// Hardening cases go over raw sockets: Node's client and URL() would normalise `..` away.
import assert from 'node:assert/strict';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startFaultyServer, type FaultyServer } from '../helpers/faulty.js';
import { request } from '../helpers/http.js';
import { assertErrorJson, karasuYaml, rawRequest, startKarasuYaml, type KarasuUnderTest } from '../helpers/karasu.js';
import { startS3, type S3Handle } from '../helpers/s3.js';

const BACKEND = 'backend-products-x7';
const BACKEND_SPECIAL = 'backend-special-x7';

let s3: S3Handle;
let karasu: KarasuUnderTest;

before(async () => {
  s3 = await startS3({
    buckets: {
      [BACKEND]: {
        x: 'p1:x',
        'special/item': 'p1:special/item',
        'a b': 'space',
        '%41': 'percent-41',
        A: 'letter-A',
        'a+b': 'plus',
        'dir/sub/file.txt': 'nested',
        'caf\u00e9': 'utf8',
      },
      [BACKEND_SPECIAL]: { item: 'p2:item' },
    },
  });
  karasu = await startKarasuYaml(
    karasuYaml({
      server: { security_limits: { max_uri_length: 1024, max_header_size: 4096, max_body_size: 1000 } },
      buckets: [
        { name: 'products', prefix: '/products', endpoint: s3.endpoint, bucket: BACKEND },
        { name: 'special', prefix: '/products/special', endpoint: s3.endpoint, bucket: BACKEND_SPECIAL },
      ],
    }),
  );
});

after(async () => {
  await karasu?.stop();
  await s3?.stop();
});

const get = (path: string, headers?: Record<string, string>) => request(karasu.url + path, { headers });

describe('routing', () => {
  test('prefix on a segment boundary: /products/x routes, /productsX and /products alone do not', async () => {
    const ok = await get('/products/x');
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'p1:x');

    assertErrorJson(await get('/productsX/x'), 404, undefined, [BACKEND]);
    assertErrorJson(await get('/productsx'), 404);
    // A prefix without a key is not an object.
    assertErrorJson(await get('/products'), 404);
    assertErrorJson(await get('/products/'), 404);
  });

  test('longest prefix wins', async () => {
    const special = await get('/products/special/item');
    assert.equal(special.status, 200);
    assert.equal(special.body.toString(), 'p2:item');
    // /products/specialX is not under /products/special: it is key specialX of /products (missing).
    assertErrorJson(await get('/products/specialX/item'), 404, 'NoSuchKey');
  });

  test('unknown prefix → 404 JSON without backend details', async () => {
    const res = await get('/nowhere/x');
    const json = assertErrorJson(res, 404, undefined, [BACKEND, BACKEND_SPECIAL]);
    assert.notEqual(json.error, 'NoSuchKey');
    assertErrorJson(await get('/'), 404);
  });

  test('the key is percent-decoded exactly once', async () => {
    assert.equal((await get('/products/a%20b')).body.toString(), 'space');
    // %2541 → key "%41" (decoding twice would give "A").
    const once = await get('/products/%2541');
    assert.equal(once.status, 200);
    assert.equal(once.body.toString(), 'percent-41');
    assert.equal((await get('/products/A')).body.toString(), 'letter-A');
    // A literal "+" in a path is a plus, not a space.
    assert.equal((await get('/products/a+b')).body.toString(), 'plus');
    assert.equal((await get('/products/caf%C3%A9')).body.toString(), 'utf8');
  });

  test('keys with slashes (raw and encoded) reach S3 intact', async () => {
    const res = await get('/products/dir/sub/file.txt');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'nested');
    assert.equal((await get('/products/dir%2Fsub%2Ffile.txt')).body.toString(), 'nested');
  });

  test('a query string is not part of the key', async () => {
    const res = await get('/products/x?foo=bar&x-id=GetObject');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'p1:x');
  });
});

describe('hardening', () => {
  const traversal = [
    '/products/../x',
    '/products/a/../x',
    '/products/..',
    '/products/%2e%2e/x',
    '/products/%2E%2E/x',
    '/products/.%2e/x',
    '/products/a/..%2fx',
    '/products/%2e%2e%2fx',
    '/products/a%2f%2e%2e%2fx',
    '/products/..%5cx',
    '/../products/x',
    '/%2e%2e/products/x',
    '/products/special/../x',
  ];
  for (const path of traversal) {
    test(`\`..\` segment → 400: ${path}`, async () => {
      const res = await rawRequest(karasu.port, path);
      assertErrorJson(res, 400);
    });
  }

  test('NUL byte (%00) → 400', async () => {
    assertErrorJson(await rawRequest(karasu.port, '/products/a%00b'), 400);
    assertErrorJson(await rawRequest(karasu.port, '/products/%00'), 400);
  });

  test('invalid percent-encoding → 400', async () => {
    assertErrorJson(await rawRequest(karasu.port, '/products/%zz'), 400);
    assertErrorJson(await rawRequest(karasu.port, '/products/%C3'), 400);
  });

  test('dots that are not a `..` segment are ordinary key characters', async () => {
    await s3.put(BACKEND, 'v1..2/..x', 'dots');
    const res = await rawRequest(karasu.port, '/products/v1..2/..x');
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'dots');
  });

  test('URI longer than max_uri_length → 414', async () => {
    const ok = await rawRequest(karasu.port, `/products/x?pad=${'a'.repeat(900)}`);
    assert.equal(ok.status, 200);
    assertErrorJson(await rawRequest(karasu.port, `/products/${'a'.repeat(1100)}`), 414);
  });

  // Node's parser overflows on the request line (cap = max_header_size + max_uri_length + 1024).
  test('URI far beyond the limit (above the HTTP parser cap) → 414, not 431', async () => {
    assertErrorJson(await rawRequest(karasu.port, `/products/${'a'.repeat(20_000)}`), 414);
  });

  const withHeaders = (bytes: number) =>
    `GET /products/x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ${'p'.repeat(bytes)}\r\nConnection: close\r\n\r\n`;

  test('headers within max_header_size pass', async () => {
    const res = await rawRequest(karasu.port, withHeaders(3000));
    assert.equal(res.status, 200);
  });

  test('headers above max_header_size (below the parser cap) → 431 with X-Request-Id', async () => {
    const res = await rawRequest(karasu.port, withHeaders(5000));
    assertErrorJson(res, 431);
  });

  test('headers above the parser cap → 431 with X-Request-Id', async () => {
    const res = await rawRequest(karasu.port, withHeaders(64 * 1024));
    assertErrorJson(res, 431);
  });

  test('Content-Length above max_body_size → 413', async () => {
    const res = await rawRequest(
      karasu.port,
      'GET /products/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n',
    );
    assertErrorJson(res, 413);
    const small = await request(`${karasu.url}/products/x`, { headers: { 'content-length': '10' }, body: '0123456789' });
    assert.equal(small.status, 200);
  });
});

describe('max_concurrent_requests', () => {
  let stall: FaultyServer;
  let limited: KarasuUnderTest;

  before(async () => {
    stall = await startFaultyServer('stall-headers');
    limited = await startKarasuYaml(
      karasuYaml({
        server: { max_concurrent_requests: 2, request_timeout: 60 },
        buckets: [
          { name: 'stall', prefix: '/stall', endpoint: stall.url, bucket: 'b', s3: { timeout: 60 } },
          { name: 'good', prefix: '/good', endpoint: s3.endpoint, bucket: BACKEND },
        ],
      }),
    );
  });
  after(async () => {
    await limited?.stop();
    await stall?.stop();
  });

  test('over the limit → 503 with Retry-After; probes still answer; capacity returns when clients leave', async () => {
    const held: ClientRequest[] = [];
    for (let i = 0; i < 2; i++) {
      const req = httpRequest(`${limited.url}/stall/k${i}`, { agent: false });
      req.on('error', () => {});
      req.end();
      held.push(req);
    }
    try {
      const deadline = Date.now() + 5000;
      while (stall.requests < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(stall.requests, 2, 'both requests reached the stalled upstream');

      const refused = await request(`${limited.url}/good/x`);
      assertErrorJson(refused, 503);
      assert.match(String(refused.headers['retry-after']), /^\d+$/);

      assert.equal((await request(`${limited.url}/health`)).status, 200);
      assert.equal((await request(`${limited.url}/ready`)).status, 200);
    } finally {
      for (const req of held) req.destroy();
    }
    const deadline = Date.now() + 5000;
    while (limited.karasu.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(limited.karasu.inflight, 0, 'requests whose clients left are no longer counted');
    const ok = await request(`${limited.url}/good/x`);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.toString(), 'p1:x');
  });
});
