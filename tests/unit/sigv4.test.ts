// Karasu's SigV4 signer (src/upstream/sigv4.ts) against the AWS SDK's own signer, on generated requests
// of the shapes the data path sends: the same Authorization, byte for byte, or the test fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import { SignatureV4 } from '@smithy/signature-v4';
import { ObjectRequestSigner, type AwsCredentials } from '../../src/upstream/sigv4.js';
import { S3Transport, encodeKey } from '../../src/upstream/s3-transport.js';

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytes = (d: SourceData): string | Uint8Array =>
  typeof d === 'string' ? d : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d);

/** node:crypto in the shape the SDK's signer expects. */
class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

async function sdkSignature(region: string, credentials: AwsCredentials, method: string, host: string, path: string, headers: Record<string, string>, nowMs: number) {
  const signer = new SignatureV4({ service: 's3', region, credentials, sha256: Sha256, uriEscapePath: false, applyChecksum: true });
  const signed = await signer.sign(
    { method, protocol: 'https:', hostname: host, path, query: {}, headers: { ...headers, host, 'x-amz-content-sha256': EMPTY_SHA256 } },
    { signingDate: new Date(nowMs) },
  );
  return signed.headers as Record<string, string>;
}

/** A small deterministic generator, so a failure names a case that can be replayed. */
function generator(seed: number) {
  let s = seed >>> 0;
  const next = () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 2 ** 32);
  return { next, pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] };
}

const KEY_PARTS = ['photos', 'a b', 'x+y', '100%', 'tilde~', 'star*', '(paren)', "it's", 'ümlaut', '日本', '🎥', 'semi;colon', 'eq=', 'q?', 'hash#', '.', 'UPPER', '-_'];
const REGIONS = ['us-east-1', 'eu-central-1', 'ap-southeast-2'];
const HEADER_CHOICES: Array<[string, string[]]> = [
  ['range', ['bytes=0-9', 'bytes=100-', 'bytes=-500', 'bytes=0-0,5-9']],
  ['if-none-match', ['"abc"', 'W/"abc", "def"', '*', '  "padded"  ']],
  ['if-modified-since', ['Fri, 24 May 2013 00:00:00 GMT', 'Thu, 01 Jan 1970 00:00:00 GMT']],
  ['if-match', ['"etag-1"', '"a"   "b"']],
  ['if-unmodified-since', ['Sat, 05 Dec 2026 12:00:00 GMT', 'Mon,  07  Dec  2026\t10:00:00 GMT']],
];

test('signs generated GET and HEAD requests exactly as the AWS SDK signer does', async () => {
  const signers = new Map(REGIONS.map((r) => [r, new ObjectRequestSigner(r)]));
  const rnd = generator(20261205);
  const secrets = ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'S3RVER', 'another+secret/with=signs'];
  let cases = 0;
  for (let i = 0; i < 400; i++) {
    const region = rnd.pick(REGIONS);
    const credentials: AwsCredentials = { accessKeyId: rnd.pick(['AKIAIOSFODNN7EXAMPLE', 'S3RVER']), secretAccessKey: rnd.pick(secrets) };
    if (rnd.next() < 0.3) credentials.sessionToken = `token/${i}+=`;
    const key = Array.from({ length: 1 + Math.floor(rnd.next() * 4) }, () => rnd.pick(KEY_PARTS)).join(rnd.pick(['/', '', ' ']));
    const path = rnd.pick(['', '/my-bucket', '/bucket.with.dots']) + encodeKey(key);
    const headers: Record<string, string> = {};
    for (const [name, values] of HEADER_CHOICES) if (rnd.next() < 0.35) headers[name] = rnd.pick(values);
    // Dates across years, days and seconds: the cached signing key and x-amz-date must follow them.
    const nowMs = Date.UTC(2013, 4, 24) + Math.floor(rnd.next() * 14 * 365) * 86_400_000 + Math.floor(rnd.next() * 86_400_000);
    const method = rnd.pick(['GET', 'HEAD']);
    const host = rnd.pick(['examplebucket.s3.amazonaws.com', '127.0.0.1:9000', 's3.eu-central-1.amazonaws.com']);
    const ours = signers.get(region)!.sign(method, path, { ...headers, host, 'x-amz-content-sha256': EMPTY_SHA256 }, credentials, nowMs);
    const sdk = await sdkSignature(region, credentials, method, host, path, headers, nowMs);
    const context = `case ${i}: ${method} ${path} ${JSON.stringify(headers)} at ${new Date(nowMs).toISOString()} in ${region}`;
    assert.equal(ours.authorization, sdk.authorization, context);
    assert.equal(ours['x-amz-date'], sdk['x-amz-date'], context);
    assert.equal(ours['x-amz-security-token'], sdk['x-amz-security-token'], context);
    cases++;
  }
  assert.equal(cases, 400);
});

test('a rotated secret or a new day gets a new signing key, the same second the same x-amz-date', async () => {
  const signer = new ObjectRequestSigner('us-east-1');
  const day = Date.UTC(2026, 11, 5, 23, 59, 59, 900);
  const sign = (creds: AwsCredentials, nowMs: number) =>
    signer.sign('GET', '/b/k', { host: 'h', 'x-amz-content-sha256': EMPTY_SHA256 }, creds, nowMs).authorization;
  const a = { accessKeyId: 'A', secretAccessKey: 'first' };
  const b = { accessKeyId: 'A', secretAccessKey: 'second' };
  for (const [creds, nowMs] of [[a, day], [b, day], [a, day], [a, day + 200], [b, day + 200]] as const) {
    assert.equal(sign(creds, nowMs), (await sdkSignature('us-east-1', creds, 'GET', 'h', '/b/k', {}, nowMs)).authorization);
  }
  // 23:59:59.900 and 00:00:00.100 are different seconds and different days.
  assert.notEqual(sign(a, day), sign(a, day + 200));
  assert.equal(sign(a, day), sign(a, day - 800));
});

test('without keys in the config, requests are signed with what the default credential chain finds, session token included', async () => {
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, token: process.env.AWS_SESSION_TOKEN };
  process.env.AWS_ACCESS_KEY_ID = 'ASIAENVEXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY = 'env/secret+key';
  process.env.AWS_SESSION_TOKEN = 'env-session-token';
  let captured = '';
  const server = net.createServer((socket) => {
    socket.once('data', (chunk) => {
      captured = chunk.toString('latin1');
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const transport = new S3Transport(
    { name: 'default', bucket: 'envbucket', region: 'eu-central-1', endpoint: `http://127.0.0.1:${port}`, access_key: null, secret_key: null, priority: 1, timeout: 5 },
    {
      replicas: [], connect_timeout: 5, idle_timeout: 5, connection_pool_size: 1,
      retry: { max_attempts: 1, initial_backoff_ms: 1, max_backoff_ms: 1 },
      circuit_breaker: { failure_threshold: 5, success_threshold: 1, timeout_seconds: 1, half_open_max_requests: 1 },
    } as never,
  );
  try {
    const answer = await transport.send({ method: 'GET', key: 'a b.txt', headers: {}, signal: new AbortController().signal, timeoutMs: 5000 });
    assert.equal(answer.status, 200);
    answer.body?.resume();
  } finally {
    transport.close();
    server.close();
    for (const [name, value] of [['AWS_ACCESS_KEY_ID', saved.id], ['AWS_SECRET_ACCESS_KEY', saved.secret], ['AWS_SESSION_TOKEN', saved.token]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
  const [requestLine, ...lines] = captured.split('\r\n');
  assert.equal(requestLine, 'GET /envbucket/a%20b.txt HTTP/1.1');
  const headers = Object.fromEntries(lines.filter(Boolean).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  assert.equal(headers['x-amz-security-token'], 'env-session-token');
  const date = headers['x-amz-date'];
  const nowMs = Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8), +date.slice(9, 11), +date.slice(11, 13), +date.slice(13, 15));
  const expected = await sdkSignature(
    'eu-central-1',
    { accessKeyId: 'ASIAENVEXAMPLE', secretAccessKey: 'env/secret+key', sessionToken: 'env-session-token' },
    'GET', `127.0.0.1:${port}`, '/envbucket/a%20b.txt', {}, nowMs,
  );
  assert.equal(headers.authorization, expected.authorization);
  assert.match(headers.authorization, /^AWS4-HMAC-SHA256 Credential=ASIAENVEXAMPLE\/\d{8}\/eu-central-1\/s3\/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token, /);
});
