// Audit lines uploaded as `.jsonl` objects: a batch is sealed when it reaches `batch_size` lines or when
// `export_interval_seconds` pass, and uploaded one at a time; a failed upload is retried with backoff
// (the batch keeps its place), and what is left at shutdown is uploaded before the process exits.
import { randomBytes } from 'node:crypto';
import { PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { AuditS3Config } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { waitUntil, type AuditSink } from './sink.js';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;
const UPLOAD_TIMEOUT_MS = 30_000;

interface Batch {
  key: string;
  lines: string[];
}

export interface S3SinkOptions {
  /** Tests only: a client to use instead of one built from the config. */
  client?: S3Client;
}

export class S3ExportSink implements AuditSink {
  readonly output = 's3' as const;
  written = 0;
  dropped = 0;
  /** Objects uploaded so far. */
  objects = 0;
  private current: string[] = [];
  private readonly sealed: Batch[] = [];
  private queuedLines = 0;
  private readonly maxQueued: number;
  private uploading = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_MIN_MS;
  private failing = false;
  private closed = false;
  private readonly interval: NodeJS.Timeout;
  private readonly client: S3Client;
  private readonly instance = randomBytes(4).toString('hex');
  private seq = 0;

  constructor(
    private readonly config: AuditS3Config,
    private readonly log: Logger,
    options: S3SinkOptions = {},
  ) {
    // At most four batches wait (a slow or failing bucket); beyond that lines are dropped and counted.
    this.maxQueued = Math.max(config.batch_size * 4, 1000);
    this.client = options.client ?? createClient(config);
    this.interval = setInterval(() => this.seal(), config.export_interval_seconds * 1000);
    this.interval.unref();
  }

  write(line: string): void {
    if (this.closed || this.queuedLines >= this.maxQueued) {
      this.dropped++;
      return;
    }
    this.current.push(line);
    this.queuedLines++;
    if (this.current.length >= this.config.batch_size) this.seal();
  }

  async close(deadline: number): Promise<void> {
    this.closed = true;
    clearInterval(this.interval);
    this.seal();
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      void this.pump();
    }
    if (!(await waitUntil(() => this.sealed.length === 0 && !this.uploading, deadline, 20))) {
      const lines = this.sealed.reduce((n, b) => n + b.lines.length, 0);
      this.dropped += lines;
      this.sealed.length = 0;
      this.log.error({ lines, bucket: this.config.bucket }, 'audit S3 export: shutdown deadline reached; lines not uploaded');
    }
    this.client.destroy();
  }

  /** Closes the current batch (if any) and starts uploading. */
  private seal(): void {
    if (this.current.length > 0) {
      this.sealed.push({ key: this.objectKey(), lines: this.current });
      this.current = [];
    }
    if (!this.retryTimer) void this.pump();
  }

  private objectKey(): string {
    const t = new Date();
    const p = (n: number) => String(n).padStart(2, '0');
    const stamp = `${t.getUTCFullYear()}-${p(t.getUTCMonth() + 1)}-${p(t.getUTCDate())}-${p(t.getUTCHours())}-${p(t.getUTCMinutes())}-${p(t.getUTCSeconds())}`;
    return `${this.config.path_prefix}karasu-audit-${stamp}-${this.instance}-${String(++this.seq).padStart(6, '0')}.jsonl`;
  }

  private async pump(): Promise<void> {
    if (this.uploading) return;
    this.uploading = true;
    try {
      while (this.sealed.length > 0) {
        const batch = this.sealed[0];
        try {
          await this.client.send(
            new PutObjectCommand({
              Bucket: this.config.bucket,
              Key: batch.key,
              Body: batch.lines.join(''),
              ContentType: 'application/x-ndjson',
            }),
            { abortSignal: AbortSignal.timeout(UPLOAD_TIMEOUT_MS) },
          );
        } catch (err) {
          if (!this.failing) this.log.warn({ err, bucket: this.config.bucket, key: batch.key }, 'audit S3 export: upload failed; retrying');
          this.failing = true;
          this.retryTimer = setTimeout(() => {
            this.retryTimer = null;
            void this.pump();
          }, this.retryMs);
          this.retryTimer.unref();
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
          return;
        }
        if (this.failing) this.log.info({ bucket: this.config.bucket }, 'audit S3 export: uploads succeed again');
        this.failing = false;
        this.retryMs = RETRY_MIN_MS;
        this.sealed.shift();
        this.queuedLines -= batch.lines.length;
        this.written += batch.lines.length;
        this.objects++;
      }
    } finally {
      this.uploading = false;
    }
  }
}

function createClient(config: AuditS3Config): S3Client {
  const options: S3ClientConfig = { region: config.region, maxAttempts: 1 };
  if (config.endpoint) {
    options.endpoint = config.endpoint;
    options.forcePathStyle = true;
  }
  if (config.access_key && config.secret_key) options.credentials = { accessKeyId: config.access_key, secretAccessKey: config.secret_key };
  return new S3Client(options);
}

