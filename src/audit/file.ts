// Audit lines appended to a file, rotated by size or daily, keeping `max_backup_files` rotated files.
// Rotation is rotating-file-stream's job (renames, the kept-files history, rotating while writes
// continue); this side batches lines per event-loop turn and bounds what waits in memory.
import { mkdir, open } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';
import type { AuditFileConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { encodeLine, recordLine, type RequestFacts } from './record.js';
import { waitUntil, type AuditSink } from './sink.js';

const MB = 1024 * 1024;
const REOPEN_MS = 5000;
/**
 * Lines are encoded at once into a batch buffer (so the line strings die young instead of being
 * promoted by the GC while they wait), written when the batch is full or FLUSH_MS after its first line.
 */
const BATCH_BYTES = 64 * 1024;
const FLUSH_MS = 100;
/** Written batches kept for reuse. */
const SPARE_BATCHES = 4;

export interface FileSinkOptions {
  /** Tests only: the rotation interval used for `daily` (rotating-file-stream syntax, e.g. '1s'). */
  dailyInterval?: string;
}

/** A batch written before the file stream started (see `startAfter`). */
interface WaitingBatch {
  data: Buffer;
  full: Buffer;
  lines: number;
}

/** `audit.jsonl` rotated at 2026-01-02 15:04:05.123 → `audit.20260102_150405_123000.jsonl` (Yatagarasu's form). */
export function backupName(file: string, time: Date, index: number): string {
  const ext = extname(file);
  const stem = basename(file, ext);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const stamp =
    `${time.getUTCFullYear()}${p(time.getUTCMonth() + 1)}${p(time.getUTCDate())}_` +
    `${p(time.getUTCHours())}${p(time.getUTCMinutes())}${p(time.getUTCSeconds())}_${p(time.getUTCMilliseconds() * 1000, 6)}`;
  return `${stem}.${stamp}${index > 1 ? `-${index}` : ''}${ext}`;
}

export class FileSink implements AuditSink {
  readonly output = 'file' as const;
  written = 0;
  dropped = 0;
  private stream: RotatingFileStream | null = null;
  private batch: Buffer;
  private readonly spare: Buffer[] = [];
  private used = 0;
  private lines = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private reopenTimer: NodeJS.Timeout | null = null;
  /** Batches kept while the stream has not started yet; null once it has. */
  private waiting: WaitingBatch[] | null = null;
  private waitingBytes = 0;
  private started: Promise<void> = Promise.resolve();
  private closeDone!: () => void;
  /** Resolves when close() has finished with the file: a sink for the same file may start then. */
  readonly finished = new Promise<void>((resolve) => (this.closeDone = resolve));

  private constructor(
    private readonly config: AuditFileConfig,
    private readonly log: Logger,
    private readonly options: FileSinkOptions,
  ) {
    this.batch = Buffer.allocUnsafe(this.batchSize);
  }

  get path(): string {
    return this.config.path;
  }

  /** Bytes per write: a batch, or half the memory budget when that is smaller. */
  private get batchSize(): number {
    return Math.max(1024, Math.min(BATCH_BYTES, Math.floor(this.config.buffer_size / 2)));
  }

  /**
   * Fails (at start-up, with the reason) when the file cannot be created or appended to. With
   * `startAfter` (a reload, while the previous sink of the same file still flushes), lines are accepted
   * at once and kept in memory (within `buffer_size`) until it resolves: two rotating streams on one
   * file would rotate it under each other.
   */
  static async open(config: AuditFileConfig, log: Logger, options: FileSinkOptions = {}, startAfter?: Promise<void>): Promise<FileSink> {
    try {
      await mkdir(dirname(config.path), { recursive: true });
      await (await open(config.path, 'a')).close();
    } catch (err) {
      throw new Error(`audit_log.file.path: cannot append to ${config.path}: ${(err as Error).message}`, { cause: err });
    }
    const sink = new FileSink(config, log, options);
    if (startAfter) {
      sink.waiting = [];
      sink.started = startAfter.then(() => sink.start()).catch((err: unknown) => log.error({ err, path: config.path }, 'audit file: cannot start writing'));
    } else {
      sink.stream = sink.createStream();
    }
    return sink;
  }

  private start(): void {
    const waiting = this.waiting;
    if (waiting === null) return;
    this.waiting = null;
    this.waitingBytes = 0;
    this.stream = this.createStream();
    for (const batch of waiting) this.hand(batch.data, batch.full, batch.lines);
  }

  /** Bytes queued for the file (stream or waiting batches); -1 when nothing can be queued now. */
  private queued(): number {
    return this.closed ? -1 : this.stream !== null ? this.stream.writableLength : this.waiting !== null ? this.waitingBytes : -1;
  }

  private armFlush(): void {
    if (this.timer === null) {
      this.timer = setTimeout(this.flush, FLUSH_MS);
      this.timer.unref();
    }
  }

  write(line: string): void {
    // At most 3 bytes of UTF-8 per UTF-16 unit: a cheap upper bound of the encoded size.
    const most = line.length * 3;
    const queued = this.queued();
    if (queued === -1 || this.used + queued + line.length > this.config.buffer_size) {
      this.dropped++;
      return;
    }
    if (this.used + most > this.batch.length) {
      this.flush();
      if (most > this.batch.length) {
        // A line larger than a batch (huge headers): written on its own.
        const data = Buffer.from(line);
        this.hand(data, data, 1);
        return;
      }
    }
    this.used += this.batch.write(line, this.used);
    this.lines++;
    this.armFlush();
  }

  /**
   * `write(recordLine(f, now))` without the string: the record is encoded straight into the batch
   * (see encodeLine), the audit log's path when every output of the line is a file.
   */
  writeRecord(f: RequestFacts, now: number): void {
    const queued = this.queued();
    if (queued === -1 || this.used + queued >= this.config.buffer_size) {
      this.dropped++;
      return;
    }
    let end = encodeLine(f, now, this.batch, this.used);
    if (end === -1) {
      this.flush();
      end = encodeLine(f, now, this.batch, 0);
      // Larger than a batch (huge headers): the string path writes it on its own.
      if (end === -1) return this.write(recordLine(f, now));
    }
    this.used = end;
    this.lines++;
    this.armFlush();
  }

  /** One write per batch (64 KiB or 100 ms), whatever the number of requests that ended in it. */
  private readonly flush = (): void => {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.lines === 0) return;
    const full = this.batch;
    const data = full.subarray(0, this.used);
    const lines = this.lines;
    this.batch = this.spare.pop() ?? Buffer.allocUnsafe(this.batchSize);
    this.used = 0;
    this.lines = 0;
    this.hand(data, full, lines);
  };

  /**
   * `data` (a view of `full`) to the stream; kept while the stream waits to start; dropped (counted)
   * while it is reopening after an error. `full` goes back to the spares once written: a fresh 64 KiB
   * buffer per flush is external memory that makes V8 collect more often.
   */
  private hand(data: Buffer, full: Buffer, lines: number): void {
    if (this.stream !== null) {
      this.stream.write(data, () => this.reuse(full));
      this.written += lines;
    } else if (this.waiting !== null) {
      this.waiting.push({ data, full, lines });
      this.waitingBytes += data.length;
    } else {
      this.dropped += lines;
      this.reuse(full);
    }
  }

  private reuse(buffer: Buffer): void {
    if (buffer.length === this.batchSize && this.spare.length < SPARE_BATCHES) this.spare.push(buffer);
  }

  async close(deadline: number): Promise<void> {
    try {
      await this.end(deadline);
    } finally {
      this.closeDone();
    }
  }

  private async end(deadline: number): Promise<void> {
    this.flush();
    this.closed = true;
    if (this.reopenTimer) clearTimeout(this.reopenTimer);
    if (this.waiting !== null) {
      let started = false;
      void this.started.then(() => (started = true));
      if (!(await waitUntil(() => started, deadline))) {
        const lines = this.waiting.reduce((n, b) => n + b.lines, 0);
        this.waiting = null;
        this.dropped += lines;
        this.log.error({ path: this.config.path, lines }, 'audit file: shutdown deadline reached before the previous writer of this file finished');
        return;
      }
    }
    const stream = this.stream;
    this.stream = null;
    if (!stream) return;
    const ended = new Promise<void>((resolve) => {
      stream.once('finish', resolve);
      stream.once('error', () => resolve());
      stream.end();
    });
    let finished = false;
    void ended.then(() => (finished = true));
    if (!(await waitUntil(() => finished, deadline))) {
      this.log.error({ path: this.config.path, unwritten_bytes: stream.writableLength }, 'audit file: shutdown deadline reached before every line was written');
      stream.destroy();
    }
  }

  private createStream(): RotatingFileStream {
    const { path, max_backup_files, max_file_size_mb, rotation_policy } = this.config;
    const file = basename(path);
    const rotation =
      rotation_policy === 'daily'
        ? { interval: this.options.dailyInterval ?? '1d', intervalBoundary: true, intervalUTC: true, initialRotation: true }
        : { size: `${Math.max(1, Math.round(max_file_size_mb * MB))}B` };
    const stream = createStream((time: Date | number | null, index?: number) => (time instanceof Date ? backupName(file, time, index ?? 1) : file), {
      path: dirname(path),
      maxFiles: max_backup_files,
      history: join(`.${file}.history`),
      ...rotation,
    });
    stream.on('warning', (err: Error) => this.log.warn({ err, path }, 'audit file rotation warning'));
    stream.on('error', (err: Error) => {
      this.log.error({ err, path }, 'audit file write failed; retrying in 5 s (lines are dropped meanwhile)');
      if (this.stream === stream) this.stream = null;
      stream.destroy();
      if (!this.closed) {
        this.reopenTimer = setTimeout(() => {
          this.reopenTimer = null;
          if (!this.closed) this.stream = this.createStream();
        }, REOPEN_MS);
        this.reopenTimer.unref();
      }
    });
    return stream;
  }
}
