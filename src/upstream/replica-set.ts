import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BucketConfig } from '../config/types.js';
import { HttpError } from '../http/errors.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';
import { LazyS3Client, type ClientTestHooks } from './s3-client.js';
import { S3Transport, UpstreamTimeoutError } from './s3-transport.js';

export interface UpstreamRequest {
  method: 'GET' | 'HEAD';
  key: string;
  range?: string;
  ifMatch?: string;
  ifNoneMatch?: string;
  ifModifiedSince?: string;
  ifUnmodifiedSince?: string;
  /** Aborted when the client goes away: the upstream request is abandoned with it. */
  signal: AbortSignal;
}

/** S3's answer. Non-2xx statuses S3 decided (304/403/404/412/416) come back here, not as throws. */
export interface UpstreamResponse {
  status: number;
  /** Raw response headers, lower-case names. */
  headers: Record<string, string>;
  body: Readable | null;
  /** S3 error code for non-2xx answers. */
  errorCode: string | null;
  /** S3's `ActualObjectSize` on a 416. */
  actualObjectSize: number | null;
  replica: string;
}

export interface ListRequest {
  prefix: string;
  /** List keys after this one (exclusive). */
  startAfter?: string;
  /** `/`: only the keys directly under `prefix`. */
  delimiter?: string;
  maxKeys?: number;
  signal: AbortSignal;
}

export interface ListPage {
  keys: Array<{ key: string; size: number }>;
  truncated: boolean;
}

export interface UpstreamEvents {
  breakerChanged(bucket: string, replica: string, from: BreakerState, to: BreakerState): void;
  attempt(bucket: string, replica: string, outcome: 'ok' | 'error' | 'timeout' | 'http_5xx'): void;
  failover(bucket: string, from: string, to: string): void;
}

interface Replica {
  name: string;
  bucket: string;
  /** GET and HEAD of objects: the hot data path. */
  transport: S3Transport;
  /** Control calls (listing for prewarm). */
  client: LazyS3Client;
  breaker: CircuitBreaker;
  timeoutMs: number;
}

class AttemptFailure extends Error {
  constructor(readonly kind: 'timeout' | 'error' | 'http_5xx', message: string) {
    super(message);
  }
}

/**
 * The upstream of one Karasu bucket: its replicas in priority order, each with a client and a breaker.
 * A request tries replicas in order, skipping open breakers; a whole pass failing is retried with
 * exponential backoff and full jitter, up to `retry.max_attempts` passes. Only failures before any
 * byte was sent to the client are retried — that is every failure here, since this returns at headers.
 */
export class ReplicaSet {
  readonly replicas: Replica[];

  constructor(
    readonly config: BucketConfig,
    private readonly events: UpstreamEvents,
    hooks: ClientTestHooks = {},
  ) {
    this.replicas = config.s3.replicas.map((replica) => ({
      name: replica.name,
      bucket: replica.bucket,
      transport: new S3Transport(replica, config.s3, hooks),
      client: new LazyS3Client(replica, config.s3, hooks),
      timeoutMs: replica.timeout * 1000,
      breaker: new CircuitBreaker(config.s3.circuit_breaker, (from, to) =>
        events.breakerChanged(config.name, replica.name, from, to),
      ),
    }));
  }

  /** Ready when at least one replica's breaker is not open. */
  get healthy(): boolean {
    return this.replicas.some((replica) => replica.breaker.state !== 'open');
  }

  async send(request: UpstreamRequest, requestTimeoutMs: number): Promise<UpstreamResponse> {
    // RFC 9110 §13.1.3/§13.1.4: If-Modified-Since is ignored when If-None-Match is present, and
    // If-Unmodified-Since when If-Match is. Not every backend does so (s3rver does not): the ignored
    // field is not sent at all.
    const normalised: UpstreamRequest = {
      ...request,
      ifModifiedSince: request.ifNoneMatch !== undefined ? undefined : request.ifModifiedSince,
      ifUnmodifiedSince: request.ifMatch !== undefined ? undefined : request.ifUnmodifiedSince,
    };
    return this.sendWithRetries(normalised, requestTimeoutMs);
  }

  private sendWithRetries(request: UpstreamRequest, requestTimeoutMs: number): Promise<UpstreamResponse> {
    return this.withFailover(request.signal, (replica) => this.attempt(replica, request, Math.min(replica.timeoutMs, requestTimeoutMs)), () => ({
      timeout: 'The storage backend did not answer in time',
      failed: 'The storage backend failed to answer',
    }));
  }

  /**
   * One page of ListObjectsV2 (prewarm). Paged with `startAfter` (the last key seen), not a continuation
   * token, so a page can come from another replica after a failover. Same failover and retries as send().
   */
  list(request: ListRequest, timeoutMs: number): Promise<ListPage> {
    return this.withFailover(request.signal, (replica) => this.listPage(replica, request, Math.min(replica.timeoutMs, timeoutMs)), (last) => ({
      timeout: 'The storage backend did not answer the listing in time',
      failed: `The storage backend failed to list objects (${last?.message ?? 'unknown error'})`,
    }));
  }

  /**
   * Replicas in priority order, skipping those whose breaker is open; a pass in which every replica
   * failed is retried with exponential backoff and full jitter, up to `retry.max_attempts` passes. Every
   * outcome feeds the replica's breaker. Only AttemptFailures are retried; anything else (an answer S3
   * gave, the client leaving) ends the request at once.
   */
  private async withFailover<T>(
    signal: AbortSignal,
    attempt: (replica: Replica) => Promise<T>,
    messages: (last: AttemptFailure | null) => { timeout: string; failed: string },
  ): Promise<T> {
    const { retry } = this.config.s3;
    let lastFailure: AttemptFailure | null = null;
    let previous: Replica | null = null;
    for (let pass = 0; pass < Math.max(1, retry.max_attempts); pass++) {
      if (pass > 0) await backoff(pass, retry.initial_backoff_ms, retry.max_backoff_ms, signal);
      let tried = 0;
      for (const replica of this.replicas) {
        if (!replica.breaker.tryAcquire()) continue;
        tried++;
        if (previous && previous !== replica) this.events.failover(this.config.name, previous.name, replica.name);
        previous = replica;
        try {
          const result = await attempt(replica);
          replica.breaker.recordSuccess();
          this.events.attempt(this.config.name, replica.name, 'ok');
          return result;
        } catch (err) {
          if (signal.aborted || !(err instanceof AttemptFailure)) throw err;
          replica.breaker.recordFailure();
          this.events.attempt(this.config.name, replica.name, err.kind);
          lastFailure = err;
        }
      }
      if (tried === 0 && !lastFailure) throw this.allOpen();
    }
    const { timeout, failed } = messages(lastFailure);
    if (lastFailure?.kind === 'timeout') throw new HttpError(504, 'UpstreamTimeout', timeout);
    throw new HttpError(502, 'BadGateway', failed);
  }

  private async listPage(replica: Replica, request: ListRequest, timeoutMs: number): Promise<ListPage> {
    const timer = AbortSignal.timeout(timeoutMs);
    try {
      const [client, { ListObjectsV2Command }] = await Promise.all([replica.client.get(), import('@aws-sdk/client-s3')]);
      const output = await client.send(
        new ListObjectsV2Command({
          Bucket: replica.bucket,
          Prefix: request.prefix || undefined,
          StartAfter: request.startAfter,
          Delimiter: request.delimiter,
          MaxKeys: request.maxKeys,
        }),
        { abortSignal: AbortSignal.any([request.signal, timer]) },
      );
      const keys = (output.Contents ?? []).filter((o) => o.Key !== undefined).map((o) => ({ key: o.Key!, size: o.Size ?? 0 }));
      return { keys, truncated: output.IsTruncated === true };
    } catch (err) {
      if (request.signal.aborted) throw err;
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status && status < 500) {
        throw new HttpError(status, (err as { name?: string }).name ?? 'ListFailed', `listing failed: S3 answered ${status}`);
      }
      if (timer.aborted) throw new AttemptFailure('timeout', `no answer from ${replica.name}`);
      throw new AttemptFailure(status ? 'http_5xx' : 'error', `${replica.name}: ${(err as Error).message}`);
    }
  }

  close(): void {
    for (const replica of this.replicas) {
      replica.transport.close();
      replica.client.destroy();
    }
  }

  private allOpen(): HttpError {
    const retryAfter = Math.min(...this.replicas.map((replica) => replica.breaker.retryAfterSeconds()));
    return new HttpError(503, 'BackendUnavailable', 'Every backend of this bucket is failing; try again later', {
      'retry-after': String(retryAfter),
    });
  }

  private async attempt(replica: Replica, request: UpstreamRequest, timeoutMs: number): Promise<UpstreamResponse> {
    try {
      const answer = await replica.transport.send({
        method: request.method,
        key: request.key,
        headers: conditionHeaders(request),
        signal: request.signal,
        timeoutMs,
      });
      if (answer.status >= 500) {
        answer.body?.destroy();
        throw new AttemptFailure('http_5xx', `${replica.name} answered ${answer.status}`);
      }
      // From here the body streams to the client; the transport cuts it when S3 goes idle (s3.idle_timeout).
      return {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
        errorCode: answer.code,
        actualObjectSize: answer.actualObjectSize,
        replica: replica.name,
      };
    } catch (err) {
      if (err instanceof AttemptFailure) throw err;
      if (request.signal.aborted) throw err;
      if (err instanceof UpstreamTimeoutError) throw new AttemptFailure('timeout', `no answer from ${replica.name} in ${timeoutMs} ms`);
      throw new AttemptFailure('error', `${replica.name}: ${(err as Error).message}`);
    }
  }
}

/** The request headers S3 evaluates for us: Range and the four preconditions. */
function conditionHeaders(request: UpstreamRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  if (request.range !== undefined) headers.range = request.range;
  if (request.ifMatch !== undefined) headers['if-match'] = request.ifMatch;
  if (request.ifNoneMatch !== undefined) headers['if-none-match'] = request.ifNoneMatch;
  if (request.ifModifiedSince !== undefined) headers['if-modified-since'] = request.ifModifiedSince;
  if (request.ifUnmodifiedSince !== undefined) headers['if-unmodified-since'] = request.ifUnmodifiedSince;
  return headers;
}


async function backoff(pass: number, initialMs: number, maxMs: number, signal: AbortSignal): Promise<void> {
  const ceiling = Math.min(maxMs, initialMs * 2 ** (pass - 1));
  await sleep(Math.random() * ceiling, undefined, { signal });
}
