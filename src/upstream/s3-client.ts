import http from 'node:http';
import https from 'node:https';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import type { ReplicaConfig, S3Config } from '../config/types.js';

/** Knobs only tests set: the known-answer signing test pins the clock, redirects the socket and picks the addressing style. */
export interface ClientTestHooks {
  /** The control client's sockets. */
  agent?: http.Agent;
  /** Where the object transport's sockets go instead of the endpoint (plain TCP; Host and signature unchanged). */
  connectTo?: { host: string; port: number };
  systemClockOffset?: number;
  /** AWS's documented signing example uses virtual-host addressing on the global endpoint. */
  forcePathStyle?: boolean;
}

/**
 * One S3 client per replica for control calls (listing, for prewarm); object reads go through
 * S3Transport. Made (and the SDK loaded) on first use: its modules are about 3 MB of heap that a Karasu
 * which never lists objects does not need. Retries are Karasu's (see
 * replica-set.ts), so the SDK makes exactly one attempt per call.
 */
export class LazyS3Client {
  private client: Promise<S3Client> | null = null;
  private closed = false;

  constructor(
    private readonly replica: ReplicaConfig,
    private readonly s3: S3Config,
    private readonly hooks: ClientTestHooks = {},
  ) {}

  get(): Promise<S3Client> {
    if (this.closed) return Promise.reject(new Error('S3 client closed'));
    this.client ??= createS3Client(this.replica, this.s3, this.hooks);
    return this.client;
  }

  destroy(): void {
    this.closed = true;
    this.client?.then((client) => client.destroy(), () => undefined);
  }
}

async function createS3Client(replica: ReplicaConfig, s3: S3Config, hooks: ClientTestHooks): Promise<S3Client> {
  const [{ S3Client }, { NodeHttpHandler }] = await Promise.all([import('@aws-sdk/client-s3'), import('@smithy/node-http-handler')]);
  const secure = replica.endpoint ? replica.endpoint.startsWith('https:') : true;
  const agentOptions = { keepAlive: true, maxSockets: s3.connection_pool_size, maxFreeSockets: s3.connection_pool_size };
  const agent = hooks.agent ?? (secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions));
  const config: S3ClientConfig = {
    region: replica.region,
    maxAttempts: 1,
    // Checksum validation would need the whole body before the first byte reaches the client.
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestChecksumCalculation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({
      connectionTimeout: s3.connect_timeout * 1000,
      ...(secure ? { httpsAgent: agent as https.Agent } : { httpAgent: agent }),
    }),
    systemClockOffset: hooks.systemClockOffset,
  };
  if (replica.endpoint) {
    config.endpoint = replica.endpoint;
    config.forcePathStyle = hooks.forcePathStyle ?? true;
  }
  if (replica.access_key && replica.secret_key) {
    config.credentials = { accessKeyId: replica.access_key, secretAccessKey: replica.secret_key };
  }
  return new S3Client(config);
}
