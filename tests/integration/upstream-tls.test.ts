// An S3 endpoint over HTTPS, as real S3 and most production stores are: a `karasu serve` process signs and
// sends its GETs over TLS, verifies the server's certificate against the trusted CAs, and refuses (502) a
// certificate it cannot verify. The store is a small HTTPS server with a fixture certificate for
// localhost; the CA is trusted through NODE_EXTRA_CA_CERTS, as an operator with a private CA would do.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { request } from '../helpers/http.js';
import { REPO_ROOT, spawnCli, waitForHttp } from '../helpers/karasu.js';
import { freePort } from '../helpers/ports.js';

const CERT = join(REPO_ROOT, 'tests', 'fixtures', 'tls', 'localhost.crt');
const KEY = join(REPO_ROOT, 'tests', 'fixtures', 'tls', 'localhost.key');
const BODY = 'hello over TLS\n';

let store: Server;
let storePort: number;
let dir: string;
const seen: Array<{ method: string; url: string; host: string | undefined; authorization: string | undefined }> = [];
/** For /tls-bucket/close.txt (answered with Connection: close): whether each new socket resumed a TLS session. */
const resumed: boolean[] = [];

before(async () => {
  store = createServer({ cert: readFileSync(CERT), key: readFileSync(KEY) }, (req, res) => {
    seen.push({ method: req.method!, url: req.url!, host: req.headers.host, authorization: req.headers.authorization });
    if (req.url === '/tls-bucket/close.txt') {
      resumed.push((req.socket as TLSSocket).isSessionReused());
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5', connection: 'close' }).end('close');
      return;
    }
    if (req.url !== '/tls-bucket/hello.txt') {
      res.writeHead(404, { 'content-type': 'application/xml' }).end('<Error><Code>NoSuchKey</Code></Error>');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(BODY),
      etag: '"0123456789abcdef0123456789abcdef"',
      'last-modified': 'Fri, 04 Dec 2026 12:00:00 GMT',
    });
    res.end(req.method === 'HEAD' ? undefined : BODY);
  });
  await new Promise<void>((resolve) => store.listen(0, '127.0.0.1', resolve));
  storePort = (store.address() as AddressInfo).port;
  dir = await mkdtemp(join(tmpdir(), 'karasu-tls-'));
});

after(async () => {
  await new Promise((resolve) => store.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

/** `karasu serve` in front of the HTTPS store; `env` decides which CAs it trusts. */
async function serveInFront(name: string, env: Record<string, string>) {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `server: { address: 127.0.0.1, port: ${port} }
buckets:
  - name: tls
    path_prefix: /tls
    s3:
      bucket: tls-bucket
      region: us-east-1
      endpoint: "https://localhost:${storePort}"
      access_key: AKIDEXAMPLE
      secret_key: wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
      retry: { max_attempts: 1 }
`,
  );
  const karasu = spawnCli(['serve', '-c', file], env);
  await waitForHttp(`http://127.0.0.1:${port}/health`, 20_000, () => karasu.child.exitCode === null);
  return { karasu, url: `http://127.0.0.1:${port}` };
}

test('GET and HEAD through Karasu reach an HTTPS endpoint, signed, with its certificate verified', async () => {
  const { karasu, url } = await serveInFront('trusted', { NODE_EXTRA_CA_CERTS: CERT });
  try {
    const before = seen.length;
    const res = await request(`${url}/tls/hello.txt`);
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(res.body.toString(), BODY);
    assert.equal(res.headers.etag, '"0123456789abcdef0123456789abcdef"');
    const head = await request(`${url}/tls/hello.txt`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], String(Buffer.byteLength(BODY)));
    const missing = await request(`${url}/tls/absent.txt`);
    assert.equal(missing.status, 404);
    assert.equal((JSON.parse(missing.body.toString()) as { error: string }).error, 'NoSuchKey');

    const sent = seen.slice(before);
    assert.deepEqual(
      sent.map((r) => `${r.method} ${r.url}`),
      ['GET /tls-bucket/hello.txt', 'HEAD /tls-bucket/hello.txt', 'GET /tls-bucket/absent.txt'],
    );
    for (const r of sent) {
      assert.equal(r.host, `localhost:${storePort}`);
      assert.match(r.authorization ?? '', /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=[0-9a-f]{64}$/);
    }
  } finally {
    assert.equal(await karasu.stop(), 0);
  }
});

test('new sockets to the HTTPS endpoint resume the TLS session instead of a full handshake', async () => {
  const { karasu, url } = await serveInFront('resume', { NODE_EXTRA_CA_CERTS: CERT });
  try {
    resumed.length = 0;
    for (let i = 0; i < 3; i++) {
      const res = await request(`${url}/tls/close.txt`);
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), 'close');
    }
    // Every answer closes its socket, so each GET opened a new one: the first with a full handshake.
    assert.deepEqual(resumed, [false, true, true]);
  } finally {
    assert.equal(await karasu.stop(), 0);
  }
});

test('a certificate Karasu cannot verify is refused: 502, and no request reaches the store', async () => {
  const { karasu, url } = await serveInFront('untrusted', {});
  try {
    const before = seen.length;
    const res = await request(`${url}/tls/hello.txt`);
    assert.equal(res.status, 502);
    const json = JSON.parse(res.body.toString()) as { error: string; request_id: string };
    assert.equal(json.error, 'BadGateway');
    assert.ok(json.request_id);
    assert.equal(seen.length, before, 'the TLS handshake failed before any request was sent');
  } finally {
    assert.equal(await karasu.stop(), 0);
  }
});
