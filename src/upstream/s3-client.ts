import http from 'node:http';
import https from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { ReplicaConfig, S3Config } from '../config/types.js';

/** Knobs only tests set: the known-answer signing test pins the clock and redirects the socket. */
export interface ClientTestHooks {
  agent?: http.Agent;
  systemClockOffset?: number;
  /** AWS's documented signing example uses virtual-host addressing on the global endpoint. */
  forcePathStyle?: boolean;
}

export const RAW_HEADERS = Symbol('karasu.rawHeaders');

/**
 * One S3 client per replica, built at load time and replaced as a whole on reload. Retries are ours
 * (see replica-set.ts), so the SDK makes exactly one attempt per call.
 */
export function createS3Client(replica: ReplicaConfig, s3: S3Config, hooks: ClientTestHooks = {}): S3Client {
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
  const client = new S3Client(config);
  stripUnsignedNoise(client);
  keepRawHeaders(client);
  return client;
}

type Next = (args: { request: unknown }) => Promise<{ response: unknown; output: unknown }>;

/**
 * S3 needs none of the SDK's telemetry headers or its `x-id` query marker, but the SDK signs them.
 * Dropping them before signing keeps the signed request exactly the documented SigV4 shape (and a
 * few hundred bytes shorter on every upstream request).
 */
function stripUnsignedNoise(client: S3Client): void {
  const strip = (next: Next) => (args: { request: unknown }) => {
    const request = args.request as { headers?: Record<string, string>; query?: Record<string, unknown> };
    if (request.headers) {
      delete request.headers['amz-sdk-invocation-id'];
      delete request.headers['amz-sdk-request'];
      delete request.headers['x-amz-user-agent'];
    }
    if (request.query) delete request.query['x-id'];
    return next(args);
  };
  client.middlewareStack.addRelativeTo(strip as never, {
    relation: 'before',
    toMiddleware: 'httpSigningMiddleware',
    name: 'karasuStripSdkNoise',
    override: true,
  });
}

/** Keeps S3's header text on the output: Karasu forwards S3's own headers, not the SDK's parse of them. */
function keepRawHeaders(client: S3Client): void {
  const keep = (next: Next) => async (args: { request: unknown }) => {
    const result = await next(args);
    const response = result.response as { headers?: Record<string, string> };
    (result.output as Record<symbol, unknown>)[RAW_HEADERS] = response.headers ?? {};
    return result;
  };
  client.middlewareStack.add(keep as never, { step: 'initialize', name: 'karasuRawHeaders', override: true });
}
