// The S3 side of `karasu demo` (and of the test harness): s3rver, a small
// S3-compatible server, run in-process with its data in a local folder.
import { createRequire } from 'node:module';
import { mkdir } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { crc32, deflateSync } from 'node:zlib';
import type { Server } from 'node:http';
import { HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

// s3rver accepts any secret (it checks only the access key id); these are its documented defaults.
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

// s3rver is CommonJS without type declarations: describe the part we use.
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  httpServer?: Server;
}
type S3rverCtor = new (options: {
  port: number;
  address: string;
  directory: string;
  silent: boolean;
  resetOnClose: boolean;
  configureBuckets: Array<{ name: string }>;
}) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;

export interface S3rverHandle {
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

/** Starts s3rver on `address:port` (port 0 = any free port) with its files under `directory`. */
export async function runS3rver(opts: {
  directory: string;
  port?: number;
  address?: string;
  buckets?: string[];
}): Promise<S3rverHandle> {
  const address = opts.address ?? '127.0.0.1';
  await mkdir(opts.directory, { recursive: true });
  const server = new S3rver({
    port: opts.port ?? 0,
    address,
    directory: opts.directory,
    silent: true,
    // resetOnClose would wipe the directory on close; callers decide what to keep.
    resetOnClose: false,
    // Created directly in the store; an existing bucket is kept as is.
    configureBuckets: (opts.buckets ?? []).map((name) => ({ name })),
  });
  const { port } = await server.run();
  const http = server.httpServer!;
  return {
    endpoint: `http://${address}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        // close() alone waits for keep-alive sockets of clients that are still around.
        http.close((err) => (err ? reject(err) : resolve()));
        http.closeAllConnections();
      }),
  };
}

/** An S3 client that works with s3rver. */
export function s3rverClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    // The SDK's default (WHEN_SUPPORTED) sends streamed bodies aws-chunked with a CRC trailer;
    // s3rver does not decode that framing and would store it as part of the object.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export interface DemoObject {
  key: string;
  size: number;
  contentType: string;
}

export interface DemoS3 {
  endpoint: string;
  port: number;
  bucket: 'demo';
  objects: DemoObject[];
  close(): Promise<void>;
}

const VIDEO_SIZE = 50 * 1024 * 1024;
const CHUNK = 1024 * 1024;

/**
 * Runs s3rver with data under `dataDir`, with bucket `demo` holding a few sample objects.
 * Objects already present are left alone, so a second start is fast. Logs nothing.
 */
export async function startDemoS3(opts: {
  dataDir: string;
  port?: number;
  address?: '127.0.0.1';
}): Promise<DemoS3> {
  const s3 = await runS3rver({ directory: opts.dataDir, port: opts.port, address: opts.address, buckets: ['demo'] });
  const client = s3rverClient(s3.endpoint);
  try {
    const png = makePng(64, 64);
    const samples: Array<DemoObject & { body: () => Buffer | Readable }> = [
      { key: 'hello.txt', contentType: 'text/plain; charset=utf-8', size: HELLO.length, body: () => HELLO },
      { key: 'index.html', contentType: 'text/html; charset=utf-8', size: INDEX_HTML.length, body: () => INDEX_HTML },
      { key: 'image.png', contentType: 'image/png', size: png.length, body: () => png },
      { key: 'video.bin', contentType: 'video/mp4', size: VIDEO_SIZE, body: () => Readable.from(demoVideoChunks(VIDEO_SIZE)) },
    ];
    for (const o of samples) {
      if (await exists(client, 'demo', o.key, o.size)) continue;
      await client.send(
        new PutObjectCommand({ Bucket: 'demo', Key: o.key, Body: o.body(), ContentLength: o.size, ContentType: o.contentType }),
      );
    }
    return {
      endpoint: s3.endpoint,
      port: s3.port,
      bucket: 'demo',
      objects: samples.map(({ key, size, contentType }) => ({ key, size, contentType })),
      close: s3.close,
    };
  } catch (err) {
    await s3.close();
    throw err;
  } finally {
    client.destroy();
  }
}

async function exists(client: S3Client, bucket: string, key: string, size: number): Promise<boolean> {
  try {
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return head.ContentLength === size; // a different size means an older or broken seed: replace it
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

const HELLO = Buffer.from('Hello from Karasu! This object came through the cache.\n');

const INDEX_HTML = Buffer.from(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Karasu demo</title></head>
<body>
  <h1>Karasu demo</h1>
  <p>This page, the image below and <a href="video.bin">video.bin</a> are served by Karasu from a local S3 server.</p>
  <img src="image.png" width="256" height="256" alt="gradient">
</body>
</html>
`);

/** Deterministic pseudo-random bytes (xorshift32), generated one chunk at a time so memory stays small. */
export function* demoVideoChunks(size: number, seed = 0x4b415241): Generator<Buffer> {
  let x = seed >>> 0 || 1;
  for (let off = 0; off < size; off += CHUNK) {
    const len = Math.min(CHUNK, size - off);
    const words = new Uint32Array(Math.ceil(len / 4));
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x >>> 0;
    }
    yield Buffer.from(words.buffer, 0, len);
  }
}

/** A valid RGB PNG with a colour gradient, built without image libraries. */
export function makePng(width: number, height: number): Buffer {
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0, p = 0; y < height; y++) {
    raw[p++] = 0; // filter type: none
    for (let x = 0; x < width; x++) {
      raw[p++] = Math.round((255 * x) / Math.max(1, width - 1));
      raw[p++] = Math.round((255 * y) / Math.max(1, height - 1));
      raw[p++] = 160;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit depth, truecolour, deflate, adaptive filtering, no interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'ascii');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(data, crc32(head.subarray(4))) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}
