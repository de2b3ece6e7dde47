import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { ReplicaConfig, S3Config } from '../config/types.js';
import type { ClientTestHooks } from './s3-client.js';

/** SHA-256 of the empty body: GET and HEAD carry none. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface ObjectRequest {
  method: 'GET' | 'HEAD';
  key: string;
  /** Extra request headers (Range, If-*), lower-case names. */
  headers: Record<string, string>;
  /** The client's: aborted when it goes away. */
  signal: AbortSignal;
  /** How long S3 may take to answer (signing included); an error body is read within it too. */
  timeoutMs: number;
}

/** S3 did not answer within `timeoutMs`. */
export class UpstreamTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`no answer in ${timeoutMs} ms`);
  }
}

/** What S3 answered, before Karasu interprets it. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  /** The body stream for 200/206; null otherwise (an error body has been read into `code`/`actualObjectSize`). */
  body: IncomingMessage | null;
  /** S3's error `<Code>` for non-2xx answers with an XML body. */
  code: string | null;
  /** S3's `<ActualObjectSize>` on a 416. */
  actualObjectSize: number | null;
}

/**
 * The data path to one replica: GET and HEAD of an object, signed with the AWS SDK's own SigV4 signer
 * and sent on a keep-alive agent. It does per request what S3 needs and nothing else: the full SDK
 * client costs ~1 ms of CPU per call (endpoint rule evaluation, schema (de)serialisation, a dozen
 * middlewares), several times s3rver's own cost per request. Listing and other control calls still use
 * @aws-sdk/client-s3 (see s3-client.ts).
 */
export class S3Transport {
  private readonly signer: SignatureV4;
  private readonly agent: http.Agent;
  private readonly secure: boolean;
  private readonly hostname: string;
  private readonly port: number | undefined;
  private readonly hostHeader: string;
  /** Prefix of every object path: `/bucket` for path-style addressing, empty for virtual-host style. */
  private readonly pathPrefix: string;
  private readonly connectTimeoutMs: number;
  private readonly clockOffsetMs: number;

  constructor(replica: ReplicaConfig, s3: S3Config, hooks: ClientTestHooks = {}) {
    const endpoint = new URL(replica.endpoint ?? `https://s3.${replica.region}.amazonaws.com`);
    // Path-style for custom endpoints (MinIO, Ceph, s3rver) and for bucket names that cannot be a DNS label.
    const pathStyle = replica.endpoint ? (hooks.forcePathStyle ?? true) : replica.bucket.includes('.');
    this.secure = endpoint.protocol === 'https:';
    this.hostname = pathStyle ? endpoint.hostname : `${replica.bucket}.${endpoint.hostname}`;
    this.port = endpoint.port ? Number(endpoint.port) : undefined;
    this.hostHeader = this.port ? `${this.hostname}:${this.port}` : this.hostname;
    this.pathPrefix = pathStyle ? `/${encodeSegment(replica.bucket)}` : '';
    this.connectTimeoutMs = s3.connect_timeout * 1000;
    this.clockOffsetMs = hooks.systemClockOffset ?? 0;
    const agentOptions = { keepAlive: true, maxSockets: s3.connection_pool_size, maxFreeSockets: s3.connection_pool_size };
    this.agent = hooks.agent ?? (this.secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions));
    this.signer = new SignatureV4({
      service: 's3',
      region: replica.region,
      credentials:
        replica.access_key && replica.secret_key
          ? { accessKeyId: replica.access_key, secretAccessKey: replica.secret_key }
          : defaultProvider(),
      sha256: Sha256,
      // S3 signs the path exactly as sent (no second encoding).
      uriEscapePath: false,
      applyChecksum: true,
    });
  }

  async send(request: ObjectRequest): Promise<RawAnswer> {
    // One timer bounds the whole exchange up to the answer (and an error body); it destroys the request
    // rather than aborting a signal: an AbortController and AbortSignal.any per attempt cost more than
    // the rest of the attempt's bookkeeping.
    let timedOut = false;
    let pending: http.ClientRequest | null = null;
    const timer = setTimeout(() => {
      timedOut = true;
      pending?.destroy(new UpstreamTimeoutError(request.timeoutMs));
    }, request.timeoutMs);
    try {
      return await this.exchangeSigned(request, (req) => (pending = req), () => timedOut);
    } finally {
      clearTimeout(timer);
    }
  }

  private async exchangeSigned(request: ObjectRequest, started: (req: http.ClientRequest) => void, timedOut: () => boolean): Promise<RawAnswer> {
    const path = this.pathPrefix + encodeKey(request.key);
    const signed = await this.signer.sign(
      {
        method: request.method,
        protocol: this.secure ? 'https:' : 'http:',
        hostname: this.hostname,
        port: this.port,
        path,
        query: {},
        headers: { ...request.headers, host: this.hostHeader, 'x-amz-content-sha256': EMPTY_SHA256 },
      },
      { signingDate: new Date(Date.now() + this.clockOffsetMs) },
    );
    if (timedOut()) throw new UpstreamTimeoutError(request.timeoutMs);
    const response = await this.exchange(request.method, path, signed.headers, request.signal, started);
    const status = response.statusCode ?? 502;
    const headers = response.headers as Record<string, string>;
    if ((status === 200 || status === 206) && request.method === 'GET') {
      return { status, headers, body: response, code: null, actualObjectSize: null };
    }
    // Everything else carries at most a small XML error document.
    const text = await readSmall(response);
    const size = Number(xmlValue(text, 'ActualObjectSize'));
    return {
      status,
      headers,
      body: null,
      code: xmlValue(text, 'Code'),
      actualObjectSize: Number.isSafeInteger(size) && text.includes('ActualObjectSize') ? size : null,
    };
  }

  close(): void {
    this.agent.destroy();
  }

  private exchange(
    method: string,
    path: string,
    headers: Record<string, string>,
    signal: AbortSignal,
    started: (req: http.ClientRequest) => void,
  ): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const options = { method, hostname: this.hostname, port: this.port, path, headers, agent: this.agent, signal };
      const req = (this.secure ? https : http).request(options, resolve);
      started(req);
      req.once('error', reject);
      // Connecting is bounded on its own; waiting for the answer is bounded by the caller's signal.
      req.once('socket', (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(() => req.destroy(new Error(`connect timeout after ${this.connectTimeoutMs} ms`)), this.connectTimeoutMs);
        socket.once('connect', () => clearTimeout(timer));
        socket.once('close', () => clearTimeout(timer));
      });
      req.end();
    });
  }
}

/** A node:crypto hash in the shape the SDK's signer expects. */
class Sha256 {
  private readonly hash: Hash | Hmac;
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

type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytes(data: SourceData): string | Uint8Array {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** RFC 3986 unreserved characters stay; everything else is percent-encoded, '/' kept between segments. */
export function encodeKey(key: string): string {
  return '/' + key.split('/').map(encodeSegment).join('/');
}

function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const ERROR_BODY_LIMIT = 64 * 1024;

/** Reads an error body (bounded: a misbehaving backend cannot make Karasu buffer much). */
function readSmall(response: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      if (text.length < ERROR_BODY_LIMIT) text += chunk;
    });
    response.once('end', () => resolve(text));
    response.once('error', () => resolve(text));
    response.once('close', () => resolve(text));
  });
}

function xmlValue(xml: string, tag: string): string | null {
  const start = xml.indexOf(`<${tag}>`);
  if (start === -1) return null;
  const end = xml.indexOf(`</${tag}>`, start);
  return end === -1 ? null : xml.slice(start + tag.length + 2, end);
}
