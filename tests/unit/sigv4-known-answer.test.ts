// AWS's documented SigV4 example (S3 API reference, "Example: GET Object"): s3rver accepts any secret,
// so this is what proves Karasu's upstream requests are signed correctly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { S3Transport } from '../../src/upstream/s3-transport.js';

const DOCUMENTED_SIGNATURE = 'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41';

test('GET test.txt from examplebucket with Range bytes=0-9 carries the documented signature', async () => {
  let captured = '';
  const server = net.createServer((socket) => {
    socket.once('data', (chunk) => {
      captured = chunk.toString('latin1');
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  // Sends what the client would send to examplebucket.s3.amazonaws.com to the capturing server instead.
  const toLoopback = { host: '127.0.0.1', port };
  const transport = new S3Transport(
    {
      name: 'default', bucket: 'examplebucket', region: 'us-east-1', endpoint: 'https://s3.amazonaws.com',
      access_key: 'AKIAIOSFODNN7EXAMPLE', secret_key: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', priority: 1, timeout: 5,
    },
    {
      replicas: [], connect_timeout: 5, idle_timeout: 5, connection_pool_size: 1,
      retry: { max_attempts: 1, initial_backoff_ms: 1, max_backoff_ms: 1 },
      circuit_breaker: { failure_threshold: 5, success_threshold: 1, timeout_seconds: 1, half_open_max_requests: 1 },
    },
    { connectTo: toLoopback, systemClockOffset: Date.UTC(2013, 4, 24) - Date.now(), forcePathStyle: false },
  );
  try {
    const answer = await transport.send({ method: 'GET', key: 'test.txt', headers: { range: 'bytes=0-9' }, signal: new AbortController().signal, timeoutMs: 5000 });
    assert.equal(answer.status, 200);
    answer.body?.resume();
  } finally {
    transport.close();
    server.close();
  }
  const [requestLine, ...headerLines] = captured.split('\r\n');
  assert.equal(requestLine, 'GET /test.txt HTTP/1.1');
  const headers = Object.fromEntries(
    headerLines.filter(Boolean).map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
  );
  assert.equal(headers.host, 'examplebucket.s3.amazonaws.com');
  assert.equal(headers['x-amz-date'], '20130524T000000Z');
  assert.equal(
    headers.authorization,
    'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,' +
      ` SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=${DOCUMENTED_SIGNATURE}`,
  );
});
