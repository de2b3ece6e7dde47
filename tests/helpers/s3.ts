// A real s3rver for tests, seeded through the S3 API so stored headers are what a real PUT stores.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { runS3rver, s3rverClient, S3RVER_CREDENTIALS, type S3rverHandle } from '../../src/demo/s3.js';

export { S3RVER_CREDENTIALS };

export interface ObjectSpec {
  body: string | Buffer;
  contentType?: string;
  metadata?: Record<string, string>;
  cacheControl?: string;
  contentDisposition?: string;
  contentEncoding?: string;
  contentLanguage?: string;
  expires?: string;
}
export type ObjectOpts = Omit<ObjectSpec, 'body'>;

export interface S3Handle {
  endpoint: string; // http://127.0.0.1:PORT
  port: number;
  dir: string;
  client: S3Client;
  put(bucket: string, key: string, body: string | Buffer, opts?: ObjectOpts): Promise<void>;
  del(bucket: string, key: string): Promise<void>;
  /** Stops the server; removes its data unless keepData (then restart() brings it back). */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** Starts again on the same port with the same data. */
  restart(): Promise<void>;
}

export async function startS3(opts: {
  buckets?: Record<string, Record<string, string | Buffer | ObjectSpec>>;
} = {}): Promise<S3Handle> {
  const buckets = opts.buckets ?? {};
  const dir = await mkdtemp(join(tmpdir(), 'karasu-s3-'));
  let server: S3rverHandle | null = await runS3rver({ directory: dir, buckets: Object.keys(buckets) });
  const { port, endpoint } = server;
  const client = s3rverClient(endpoint);

  const put = async (bucket: string, key: string, body: string | Buffer, o: ObjectOpts = {}): Promise<void> => {
    await client.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: body,
        ContentType: o.contentType,
        Metadata: o.metadata,
        CacheControl: o.cacheControl,
        ContentDisposition: o.contentDisposition,
        ContentEncoding: o.contentEncoding,
        ContentLanguage: o.contentLanguage,
        Expires: o.expires === undefined ? undefined : new Date(o.expires),
      }),
    );
  };

  const handle: S3Handle = {
    endpoint,
    port,
    dir,
    client,
    put,
    del: async (bucket, key) => {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
    },
    async stop({ keepData = false } = {}) {
      const s = server;
      server = null;
      await s?.close();
      if (!keepData) {
        client.destroy();
        await rm(dir, { recursive: true, force: true });
      }
    },
    async restart() {
      if (server) await server.close();
      server = null;
      // The port was released a moment ago; another process grabbing it in between is unlikely,
      // but a short retry covers a slow release.
      for (let attempt = 0; ; attempt++) {
        try {
          server = await runS3rver({ directory: dir, port });
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 20) throw err;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    },
  };

  try {
    for (const [bucket, objects] of Object.entries(buckets)) {
      for (const [key, spec] of Object.entries(objects)) {
        if (typeof spec === 'string' || Buffer.isBuffer(spec)) await put(bucket, key, spec);
        else await put(bucket, key, spec.body, spec);
      }
    }
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}
