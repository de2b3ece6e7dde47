import type { Readable } from 'node:stream';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import type { ReplicaConfig, S3Config } from '../config/types.js';
import { UpstreamBody } from './body.js';
import { Http1Pool, type Call, type ResponseHandler } from './http1/pool.js';
import type { Lease } from './http1/read-buffers.js';
import type { ClientTestHooks } from './s3-client.js';
import { ObjectRequestSigner, type AwsCredentials } from './sigv4.js';

/** SHA-256 of the empty body: GET and HEAD carry none. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface ObjectRequest {
  method: 'GET' | 'HEAD';
  key: string;
  /** Extra request headers (Range, If-*), lower-case names. */
  headers: Record<string, string>;
  /** The client's: aborted when it goes away. */
  signal: AbortSignal;
  /** How long S3 may take to answer (signing and waiting for a pooled connection included); an error body is read within it too. */
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
  /** Lower-case names; a repeated field's values joined with ", ". */
  headers: Record<string, string>;
  /** The body stream for a GET answered 200/206; null otherwise (an error body has been read into `code`/`actualObjectSize`). */
  body: Readable | null;
  /** S3's error `<Code>` for non-2xx answers with an XML body. */
  code: string | null;
  /** S3's `<ActualObjectSize>` on a 416. */
  actualObjectSize: number | null;
}

/**
 * The data path to one replica: GET and HEAD of an object, signed (SigV4, sigv4.ts) and sent on a
 * keep-alive connection pool. It does per request what S3 needs and nothing else: the full SDK client
 * costs ~1 ms of CPU per call (endpoint rule evaluation, schema (de)serialisation, a dozen middlewares),
 * several times s3rver's own cost per request. Listing and other control calls still use
 * @aws-sdk/client-s3 (see s3-client.ts).
 *
 * The pool is Karasu's own (http1/pool.ts) rather than node:http or undici: both give every socket read
 * a fresh buffer, and node's parser copies each body chunk once more. While large objects stream, those
 * buffers drive V8 into full GCs several times a second (docs/design.md, "Upstream reads"). Here reads
 * land in reused buffers and the body goes on as views of them (body.ts).
 */
export class S3Transport {
  private readonly signer: ObjectRequestSigner;
  /** Static keys, or the default chain (which caches what it found and refreshes it before it expires). */
  private readonly credentials: AwsCredentials | (() => Promise<AwsCredentials>);
  private readonly pool: Http1Pool;
  private readonly hostHeader: string;
  /** Prefix of every object path: `/bucket` for path-style addressing, empty for virtual-host style. */
  private readonly pathPrefix: string;
  private readonly clockOffsetMs: number;

  constructor(replica: ReplicaConfig, s3: S3Config, hooks: ClientTestHooks = {}) {
    const endpoint = new URL(replica.endpoint ?? `https://s3.${replica.region}.amazonaws.com`);
    // Path-style for custom endpoints (MinIO, Ceph, s3rver) and for bucket names that cannot be a DNS label.
    const pathStyle = replica.endpoint ? (hooks.forcePathStyle ?? true) : replica.bucket.includes('.');
    const secure = endpoint.protocol === 'https:';
    const hostname = pathStyle ? endpoint.hostname : `${replica.bucket}.${endpoint.hostname}`;
    const port = endpoint.port ? Number(endpoint.port) : undefined;
    this.hostHeader = port ? `${hostname}:${port}` : hostname;
    this.pathPrefix = pathStyle ? `/${encodeSegment(replica.bucket)}` : '';
    this.clockOffsetMs = hooks.systemClockOffset ?? 0;
    // The time to the answer is bounded by each request's own timer (it covers the wait for a pooled
    // connection too); the body by `idle_timeout`, not counting time paused by a slow client.
    const host = hostname.replace(/^\[|\]$/g, ''); // an IPv6 literal without its brackets
    this.pool = new Http1Pool({
      host: hooks.connectTo?.host ?? host,
      port: hooks.connectTo?.port ?? port ?? (secure ? 443 : 80),
      secure: hooks.connectTo ? false : secure,
      servername: host,
      connections: s3.connection_pool_size,
      connectTimeoutMs: s3.connect_timeout * 1000,
      bodyTimeoutMs: s3.idle_timeout * 1000,
    });
    this.signer = new ObjectRequestSigner(replica.region);
    this.credentials =
      replica.access_key && replica.secret_key ? { accessKeyId: replica.access_key, secretAccessKey: replica.secret_key } : defaultProvider();
  }

  send(request: ObjectRequest): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      const exchange = new Exchange(request, resolve, reject);
      const credentials = this.credentials;
      // Static keys sign synchronously: a miss reaches the socket in the same tick it was decided.
      if (typeof credentials !== 'function') this.dispatch(exchange, request, credentials);
      else credentials().then((found) => this.dispatch(exchange, request, found), (err: unknown) => exchange.fail(err as Error));
    });
  }

  private dispatch(exchange: Exchange, request: ObjectRequest, credentials: AwsCredentials): void {
    if (exchange.settled) return; // timed out or the client left while the credentials were fetched
    try {
      const path = this.pathPrefix + encodeKey(request.key);
      const headers = { ...request.headers, host: this.hostHeader, 'x-amz-content-sha256': EMPTY_SHA256 };
      this.signer.sign(request.method, path, headers, credentials, Date.now() + this.clockOffsetMs);
      exchange.call = this.pool.request({ path, method: request.method, headers }, exchange);
    } catch (err) {
      exchange.fail(err as Error);
    }
  }

  close(): void {
    // Requests still streaming (a retired snapshot's last downloads) finish; then the sockets close.
    this.pool.close();
  }
}

/**
 * One request to S3, as the pool's response handler. Settles the caller's promise once: at the answer's
 * headers for a GET answered 200/206 (the body then streams through an UpstreamBody), else once the
 * small error body has been read. Until then it owns the timeout and the client's abort signal.
 */
class Exchange implements ResponseHandler {
  settled = false;
  call: Call | null = null;
  private readonly timer: NodeJS.Timeout;
  private status = 0;
  private headers: Record<string, string> = {};
  private body: UpstreamBody | null = null;
  private errorBody: Buffer[] | null = null;
  private errorBytes = 0;

  constructor(
    private readonly request: ObjectRequest,
    private readonly resolve: (answer: RawAnswer) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.timer = setTimeout(() => this.fail(new UpstreamTimeoutError(request.timeoutMs)), request.timeoutMs);
    if (request.signal.aborted) this.fail(abortReason(request.signal));
    else request.signal.addEventListener('abort', this);
  }

  /** The client's signal fired (an EventListener object: no closure per request). */
  handleEvent(): void {
    this.fail(abortReason(this.request.signal));
  }

  /** Ends the exchange before its answer was handed over. */
  fail(err: Error): void {
    if (this.settled) return;
    this.settle();
    this.call?.abort(err);
    this.reject(err);
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.request.signal.removeEventListener('abort', this);
  }

  onResponseStart(call: Call, status: number, headers: Record<string, string | string[]>): void {
    this.status = status;
    this.headers = joinRepeated(headers);
    if (this.settled) return;
    if ((status === 200 || status === 206) && this.request.method === 'GET') {
      this.body = new UpstreamBody(call);
      this.settle();
      this.resolve({ status, headers: this.headers, body: this.body, code: null, actualObjectSize: null });
    } else {
      this.errorBody = [];
    }
  }

  onResponseData(_call: Call, chunk: Buffer, lease: Lease): void {
    if (this.body) {
      this.body.deliver(chunk, lease);
      return;
    }
    if (this.errorBody && this.errorBytes < ERROR_BODY_LIMIT) {
      // A misbehaving backend cannot make Karasu buffer much.
      this.errorBody.push(Buffer.from(chunk));
      this.errorBytes += chunk.length;
    }
    lease.release();
  }

  onResponseEnd(): void {
    if (this.body) {
      this.body.finish();
      return;
    }
    if (this.settled) return;
    this.settle();
    const text = this.errorBody ? Buffer.concat(this.errorBody).toString('utf8') : '';
    const size = Number(xmlValue(text, 'ActualObjectSize'));
    this.resolve({
      status: this.status,
      headers: this.headers,
      body: null,
      code: xmlValue(text, 'Code'),
      actualObjectSize: Number.isSafeInteger(size) && text.includes('ActualObjectSize') ? size : null,
    });
  }

  onResponseError(_call: Call, err: Error): void {
    if (this.body) this.body.fail(err);
    else this.fail(err);
  }
}

function joinRepeated(headers: Record<string, string | string[]>): Record<string, string> {
  for (const name in headers) {
    const value = headers[name];
    if (typeof value !== 'string') headers[name] = value!.join(', ');
  }
  return headers as Record<string, string>;
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('client gone');
}

/** RFC 3986 unreserved characters stay; everything else is percent-encoded, '/' kept between segments. */
export function encodeKey(key: string): string {
  return '/' + key.split('/').map(encodeSegment).join('/');
}

function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

const ERROR_BODY_LIMIT = 64 * 1024;

function xmlValue(xml: string, tag: string): string | null {
  const start = xml.indexOf(`<${tag}>`);
  if (start === -1) return null;
  const end = xml.indexOf(`</${tag}>`, start);
  return end === -1 ? null : xml.slice(start + tag.length + 2, end);
}
