// Proves the test helpers (and the demo's S3 side) work against the real things they stand for.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import { demoVideoChunks, s3rverClient, startDemoS3 } from '../../src/demo/s3.js';
import { refusedPort, startFaultyServer } from '../helpers/faulty.js';
import { request, sha256 } from '../helpers/http.js';
import { freePort } from '../helpers/ports.js';
import { startRedis } from '../helpers/redis.js';
import { startRelay } from '../helpers/relay.js';
import { startS3 } from '../helpers/s3.js';

const BIN = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));

async function withS3<T>(fn: (s3: Awaited<ReturnType<typeof startS3>>) => Promise<T>): Promise<T> {
  const s3 = await startS3({
    buckets: {
      media: {
        'plain.txt': 'hello',
        'bin/data.bin': BIN,
        'rich.txt': {
          body: 'rich body',
          contentType: 'text/plain; charset=utf-8',
          metadata: { owner: 'Alice', 'x-trace': 'abc' },
          cacheControl: 'public, max-age=60',
          contentDisposition: 'attachment; filename="rich.txt"',
          contentEncoding: 'identity',
          contentLanguage: 'en',
          expires: 'Wed, 01 Jan 2031 00:00:00 GMT',
        },
      },
      empty: {},
    },
  });
  try {
    return await fn(s3);
  } finally {
    await s3.stop();
  }
}

test('freePort gives a bindable port', async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
});

test('s3rver: seeded objects come back with their headers, through the SDK and raw HTTP', async () => {
  await withS3(async (s3) => {
    assert.match(s3.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
    const got = await s3.client.send(new GetObjectCommand({ Bucket: 'media', Key: 'rich.txt' }));
    assert.equal(await got.Body!.transformToString(), 'rich body');
    assert.deepEqual(got.Metadata, { owner: 'Alice', 'x-trace': 'abc' });
    assert.equal(got.ContentType, 'text/plain; charset=utf-8');
    assert.equal(got.CacheControl, 'public, max-age=60');
    assert.equal(got.ContentDisposition, 'attachment; filename="rich.txt"');
    assert.equal(got.ContentLanguage, 'en');
    assert.equal(got.ExpiresString, 'Wed, 01 Jan 2031 00:00:00 GMT');

    // Unsigned path-style GET: s3rver serves it; metadata arrives as x-amz-meta-* headers.
    const raw = await request(`${s3.endpoint}/media/rich.txt`);
    assert.equal(raw.status, 200);
    assert.equal(raw.headers['x-amz-meta-owner'], 'Alice');
    assert.equal(raw.headers['cache-control'], 'public, max-age=60');
    assert.equal(raw.headers['content-encoding'], 'identity');
    assert.match(String(raw.headers.etag), /^"[0-9a-f]{32}"$/);

    const bin = await request(`${s3.endpoint}/media/bin/data.bin`);
    assert.equal(sha256(bin.body), sha256(BIN));
    // No contentType given: the SDK's PutObject sends application/octet-stream for a Buffer body.
    assert.equal(bin.headers['content-type'], 'application/octet-stream');

    await s3.put('empty', 'new.txt', 'new', { contentType: 'text/plain' });
    assert.equal((await request(`${s3.endpoint}/empty/new.txt`)).body.toString(), 'new');
    await s3.del('empty', 'new.txt');
    assert.equal((await request(`${s3.endpoint}/empty/new.txt`)).status, 404);
  });
});

test('s3rver: stop({keepData}) then restart() serves the same data on the same port', async () => {
  await withS3(async (s3) => {
    await s3.stop({ keepData: true });
    await assert.rejects(request(`${s3.endpoint}/media/plain.txt`), { code: 'ECONNREFUSED' });
    await s3.restart();
    const res = await request(`${s3.endpoint}/media/plain.txt`);
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'hello');
    // The SDK client made before the restart still works.
    const head = await s3.client.send(new HeadObjectCommand({ Bucket: 'media', Key: 'bin/data.bin' }));
    assert.equal(head.ContentLength, BIN.length);
  });
});

test('s3 stop() removes the data dir', async () => {
  const s3 = await startS3({ buckets: { b: { k: 'v' } } });
  await s3.stop();
  await assert.rejects(stat(s3.dir), { code: 'ENOENT' });
});

test('relay: forwards signed SDK requests unchanged and counts them', async () => {
  await withS3(async (s3) => {
    const relay = await startRelay(s3.endpoint);
    try {
      // Signed for the relay's Host (127.0.0.1:relayPort): s3rver accepts it as path-style.
      const client = s3rverClient(relay.url);
      const got = await client.send(new GetObjectCommand({ Bucket: 'media', Key: 'rich.txt' }));
      assert.equal(await got.Body!.transformToString(), 'rich body');
      assert.equal(got.Metadata?.owner, 'Alice');
      await client.send(new HeadObjectCommand({ Bucket: 'media', Key: 'bin/data.bin' }));
      const bin = await request(`${relay.url}/media/bin/data.bin`);
      assert.equal(sha256(bin.body), sha256(BIN));
      const missing = await request(`${relay.url}/media/nope`);
      assert.equal(missing.status, 404);
      const ranged = await request(`${relay.url}/media/bin/data.bin`, { headers: { range: 'bytes=0-9' } });
      assert.equal(ranged.status, 206);
      assert.deepEqual(ranged.body, BIN.subarray(0, 10));
      client.destroy();

      const st = relay.stats();
      assert.equal(st.requests, 5);
      assert.deepEqual(st.byMethod, { GET: 4, HEAD: 1 });
      assert.equal(st.bodyBytes, 'rich body'.length + BIN.length + missing.body.length + 10);
      assert.deepEqual(st.paths.slice(0, 2).map((p) => p.split('?')[0]), ['/media/rich.txt', '/media/bin/data.bin']);
      relay.reset();
      assert.deepEqual(relay.stats(), { requests: 0, byMethod: {}, bodyBytes: 0, paths: [] });

      // Origin down: the relay drops the connection, as the origin would.
      await s3.stop({ keepData: true });
      await assert.rejects(request(`${relay.url}/media/plain.txt`));
      await s3.restart();
      assert.equal((await request(`${relay.url}/media/plain.txt`)).body.toString(), 'hello');
    } finally {
      await relay.stop();
    }
  });
});

test('faulty: stall-headers never answers', async () => {
  const srv = await startFaultyServer('stall-headers');
  try {
    await assert.rejects(request(srv.url + '/b/k', { timeoutMs: 300 }), /timed out/);
    assert.equal(srv.requests, 1);
  } finally {
    await srv.stop();
  }
});

test('faulty: stall-body sends headers and a few bytes, then stalls', async () => {
  const srv = await startFaultyServer('stall-body', { contentLength: 5000, sendBytes: 100 });
  try {
    const { request: rawRequest } = await import('node:http');
    const seen = await new Promise<{ status: number; length: string | undefined; got: number }>((resolve, reject) => {
      const req = rawRequest(srv.url + '/b/k', { agent: false }, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => {
          got += c.length;
        });
        setTimeout(() => {
          resolve({ status: res.statusCode!, length: res.headers['content-length'], got });
          req.destroy();
        }, 300);
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(seen, { status: 200, length: '5000', got: 100 });
  } finally {
    await srv.stop();
  }
});

test('faulty: reset-mid-body cuts the connection after some bytes', async () => {
  const srv = await startFaultyServer('reset-mid-body', { contentLength: 10_000, sendBytes: 500 });
  try {
    await assert.rejects(request(srv.url + '/b/k'), /aborted|ended before|socket hang up|ECONNRESET/);
    assert.equal(srv.requests, 1);
  } finally {
    await srv.stop();
  }
});

test('faulty: status answers with an S3-style error', async () => {
  const srv = await startFaultyServer('status', { status: 503, headers: { 'retry-after': '1' } });
  try {
    const a = await request(srv.url + '/b/k');
    assert.equal(a.status, 503);
    assert.equal(a.headers['retry-after'], '1');
    assert.match(a.body.toString(), /<Code>SlowDown<\/Code>/);
    const h = await request(srv.url + '/b/k', { method: 'HEAD' });
    assert.equal(h.status, 503);
    assert.equal(srv.requests, 2);
  } finally {
    await srv.stop();
  }
});

test('faulty: refusedPort refuses connections', async () => {
  const port = await refusedPort();
  await assert.rejects(request(`http://127.0.0.1:${port}/`), { code: 'ECONNREFUSED' });
});

test('redis: private server answers, survives kill + restart on the same port', async (t) => {
  const redis = await startRedis();
  if (!redis) return t.skip('redis-server not installed');
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50, lazyConnect: true });
  client.on('error', () => {}); // expected while the server is down
  try {
    assert.notEqual(redis.port, 6379);
    await client.connect();
    assert.equal(await client.ping(), 'PONG');
    await client.set('k', 'v');
    await redis.kill();
    await assert.rejects(client.ping());
    await redis.restart();
    // ioredis reconnects by itself; data is gone (no persistence).
    const deadline = Date.now() + 5000;
    let pong = '';
    while (Date.now() < deadline && pong !== 'PONG') pong = await client.ping().catch(() => '');
    assert.equal(pong, 'PONG');
    assert.equal(await client.get('k'), null);
  } finally {
    client.disconnect();
    await redis.stop();
  }
});

test('demo S3: seeds bucket demo once, with a valid PNG and a 50 MiB video', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'karasu-demo-'));
  try {
    const t0 = Date.now();
    let demo = await startDemoS3({ dataDir });
    const firstMs = Date.now() - t0;
    try {
      assert.equal(demo.bucket, 'demo');
      assert.deepEqual(demo.objects.map((o) => o.key), ['hello.txt', 'index.html', 'image.png', 'video.bin']);
      const base = `${demo.endpoint}/demo/`;
      assert.match((await request(base + 'hello.txt')).body.toString(), /Karasu/);
      const html = await request(base + 'index.html');
      assert.match(String(html.headers['content-type']), /^text\/html/);
      assert.match(html.body.toString(), /src="image\.png"/);
      const png = await request(base + 'image.png');
      assert.equal(png.headers['content-type'], 'image/png');
      assert.deepEqual(png.body.subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
      const video = await request(base + 'video.bin');
      assert.equal(video.body.length, 50 * 1024 * 1024);
      assert.equal(video.headers['content-type'], 'video/mp4');
      assert.equal(sha256(video.body), sha256(Buffer.concat([...demoVideoChunks(50 * 1024 * 1024)])));
      for (const o of demo.objects) assert.equal((await request(base + o.key, { method: 'HEAD' })).headers['content-length'], String(o.size));
    } finally {
      await demo.close();
    }
    // Second start: nothing re-uploaded (the stored file is untouched) and quick.
    const videoFile = join(dataDir, 'demo', 'video.bin._S3rver_object');
    const before = (await stat(videoFile)).mtimeMs;
    const t1 = Date.now();
    demo = await startDemoS3({ dataDir });
    const secondMs = Date.now() - t1;
    await demo.close();
    assert.equal((await stat(videoFile)).mtimeMs, before);
    assert.ok(firstMs < 15_000, `first seed took ${firstMs} ms`);
    assert.ok(secondMs < 2_000, `second start took ${secondMs} ms`);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
