import type { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { GetObjectCommand, HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { BucketConfig } from '../config/types.js';
import { HttpError } from '../http/errors.js';
import { CircuitBreaker, type BreakerState } from './breaker.js';
import { createS3Client, RAW_HEADERS, type ClientTestHooks } from './s3-client.js';

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

export interface UpstreamEvents {
  breakerChanged(bucket: string, replica: string, from: BreakerState, to: BreakerState): void;
  attempt(bucket: string, replica: string, outcome: 'ok' | 'error' | 'timeout' | 'http_5xx'): void;
  failover(bucket: string, from: string, to: string): void;
}

interface Replica {
  name: string;
  bucket: string;
  client: S3Client;
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
      client: createS3Client(replica, config.s3, hooks),
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

  private async sendWithRetries(request: UpstreamRequest, requestTimeoutMs: number): Promise<UpstreamResponse> {
    const { retry } = this.config.s3;
    let lastFailure: AttemptFailure | null = null;
    let previous: Replica | null = null;
    for (let pass = 0; pass < Math.max(1, retry.max_attempts); pass++) {
      if (pass > 0) await backoff(pass, retry.initial_backoff_ms, retry.max_backoff_ms, request.signal);
      let tried = 0;
      for (const replica of this.replicas) {
        if (!replica.breaker.tryAcquire()) continue;
        tried++;
        if (previous && previous !== replica) this.events.failover(this.config.name, previous.name, replica.name);
        previous = replica;
        try {
          const response = await this.attempt(replica, request, Math.min(replica.timeoutMs, requestTimeoutMs));
          replica.breaker.recordSuccess();
          this.events.attempt(this.config.name, replica.name, 'ok');
          return response;
        } catch (err) {
          if (request.signal.aborted) throw err;
          if (!(err instanceof AttemptFailure)) throw err;
          replica.breaker.recordFailure();
          this.events.attempt(this.config.name, replica.name, err.kind);
          lastFailure = err;
        }
      }
      if (tried === 0 && !lastFailure) throw this.allOpen();
    }
    if (lastFailure?.kind === 'timeout') {
      throw new HttpError(504, 'UpstreamTimeout', 'The storage backend did not answer in time');
    }
    throw new HttpError(502, 'BadGateway', 'The storage backend failed to answer');
  }

  close(): void {
    for (const replica of this.replicas) replica.client.destroy();
  }

  private allOpen(): HttpError {
    const retryAfter = Math.min(...this.replicas.map((replica) => replica.breaker.retryAfterSeconds()));
    return new HttpError(503, 'BackendUnavailable', 'Every backend of this bucket is failing; try again later', {
      'retry-after': String(retryAfter),
    });
  }

  private async attempt(replica: Replica, request: UpstreamRequest, timeoutMs: number): Promise<UpstreamResponse> {
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), timeoutMs);
    const signal = AbortSignal.any([request.signal, timer.signal]);
    const input = {
      Bucket: replica.bucket,
      Key: request.key,
      Range: request.range,
      IfMatch: request.ifMatch,
      IfNoneMatch: request.ifNoneMatch,
      IfModifiedSince: request.ifModifiedSince as unknown as Date | undefined,
      IfUnmodifiedSince: request.ifUnmodifiedSince as unknown as Date | undefined,
    };
    try {
      const command = request.method === 'GET' ? new GetObjectCommand(input) : new HeadObjectCommand(input);
      const output = await replica.client.send(command as GetObjectCommand, { abortSignal: signal });
      const body = (output.Body as IncomingMessage | undefined) ?? null;
      const headers = rawHeaders(output);
      if (body) {
        // From here the body streams to the client: an idle backend must not hold the response open.
        body.setTimeout(this.config.s3.idle_timeout * 1000, () => body.destroy(new Error('upstream idle timeout')));
      }
      return {
        status: output.$metadata.httpStatusCode ?? 200,
        headers,
        body,
        errorCode: null,
        actualObjectSize: null,
        replica: replica.name,
      };
    } catch (err) {
      if (request.signal.aborted) throw err;
      if (timer.signal.aborted) throw new AttemptFailure('timeout', `no answer from ${replica.name} in ${timeoutMs} ms`);
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status && status < 500) return s3Answer(err, status, replica.name);
      if (status) throw new AttemptFailure('http_5xx', `${replica.name} answered ${status}`);
      throw new AttemptFailure('error', `${replica.name}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timeout);
    }
  }
}

function s3Answer(err: unknown, status: number, replica: string): UpstreamResponse {
  const e = err as { Code?: string; name?: string; ActualObjectSize?: string; $response?: { headers?: Record<string, string> } };
  const size = e.ActualObjectSize === undefined ? NaN : Number(e.ActualObjectSize);
  return {
    status,
    headers: e.$response?.headers ?? {},
    body: null,
    errorCode: e.Code ?? (e.name && e.name !== 'Unknown' ? e.name : null),
    actualObjectSize: Number.isSafeInteger(size) ? size : null,
    replica,
  };
}

/** The SDK parses headers into typed fields; Karasu forwards S3's own header text instead. */
function rawHeaders(output: object): Record<string, string> {
  return (output as { [RAW_HEADERS]?: Record<string, string> })[RAW_HEADERS] ?? {};
}

async function backoff(pass: number, initialMs: number, maxMs: number, signal: AbortSignal): Promise<void> {
  const ceiling = Math.min(maxMs, initialMs * 2 ** (pass - 1));
  await sleep(Math.random() * ceiling, undefined, { signal });
}
