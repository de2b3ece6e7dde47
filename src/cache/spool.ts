import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { TierWriter } from './types.js';

/**
 * One upstream body shared by every client that asked for the same object while it was arriving.
 * Chunks are kept as they come (the spool is only used for bodies small enough to cache in memory,
 * so this is bounded), and each reader walks them at its own pace: a client that joins mid-stream
 * starts from byte 0, a slow client never slows the upstream or the others.
 */
export class Spool {
  readonly chunks: Buffer[] = [];
  received = 0;
  done = false;
  error: Error | null = null;
  private wakers: Array<() => void> = [];
  /** The body's last byte, withheld from readers until finish(): see below. */
  private lastByte: Buffer | null = null;

  /** `size`: the declared length. The last byte is released only once the whole body checked out. */
  constructor(private readonly size: number) {}

  push(chunk: Buffer): void {
    this.received += chunk.length;
    // Readers must not see a complete body before its integrity is known: a body that fails the check
    // then reaches every client incomplete (an error), never as a complete 200 with the wrong bytes.
    if (this.received >= this.size && chunk.length > 0) {
      this.lastByte = chunk.subarray(chunk.length - 1);
      chunk = chunk.subarray(0, chunk.length - 1);
    }
    if (chunk.length > 0) this.chunks.push(chunk);
    this.wake();
  }

  finish(): void {
    if (this.lastByte) this.chunks.push(this.lastByte);
    this.lastByte = null;
    this.done = true;
    this.wake();
  }

  fail(error: Error): void {
    this.error = error;
    this.wake();
  }

  /** The whole body; only once done. */
  body(): Buffer {
    return Buffer.concat(this.chunks, this.received);
  }

  /** A stream of bytes [start, end] (inclusive) of the body, as they become available. */
  reader(start = 0, end = Number.POSITIVE_INFINITY): Readable {
    return spoolReader(this, start, end);
  }

  /** Calls `wake` once when more bytes arrive, the body ends or it fails. */
  onProgress(wake: () => void): void {
    this.wakers.push(wake);
  }

  private wake(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
  }
}

function spoolReader(spool: Spool, start: number, end: number): Readable {
  let index = 0;
  let offset = 0;
  let waiting = false;
  const stream = new Readable({
    read() {
      pump();
    },
  });
  function pump(): void {
    waiting = false;
    while (index < spool.chunks.length) {
      const chunk = spool.chunks[index++];
      const chunkStart = offset;
      offset += chunk.length;
      const from = Math.max(start - chunkStart, 0);
      const to = Math.min(end + 1 - chunkStart, chunk.length);
      const more = from < to ? stream.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to)) : true;
      if (offset > end) {
        stream.push(null);
        return;
      }
      if (!more) return;
    }
    if (spool.error) stream.destroy(spool.error);
    else if (spool.done) stream.push(null);
    else if (!waiting) {
      waiting = true;
      spool.onProgress(pump);
    }
  }
  return stream;
}

/** Bytes per read of the spool file (as for disk hits: fewer thread-pool trips than 64 KiB reads). */
const READ_CHUNK = 512 * 1024;

/**
 * A spool for bodies too large to hold in memory: the bytes go into the disk tier's temporary file and
 * every waiting client tails that file through one shared read descriptor, which stays valid when the
 * finished file is renamed into the cache. Memory stays bounded whatever the object size; the upstream
 * is read as fast as the disk takes it.
 */
export class FileSpool {
  received = 0;
  done = false;
  error: Error | null = null;
  private wakers: Array<() => void> = [];
  private handle: Promise<FileHandle> | null = null;
  private readers = 0;
  private sealed = false;

  /** `size`: the declared length; as in Spool, the last byte is readable only once the body checked out. */
  constructor(
    private readonly writer: TierWriter,
    private readonly size: number,
  ) {}

  async write(chunk: Buffer): Promise<void> {
    await this.writer.write(chunk);
    // The file exists once the first write has landed.
    this.handle ??= open(this.writer.path, 'r');
    this.received += chunk.length;
    this.wake();
  }

  finish(): void {
    this.done = true;
    this.wake();
  }

  fail(error: Error): void {
    this.error = error;
    this.wake();
  }

  /** No new reader can join any more (the fill is over): the descriptor closes with the last reader. */
  seal(): void {
    this.sealed = true;
    this.closeIfIdle();
  }

  onProgress(wake: () => void): void {
    this.wakers.push(wake);
  }

  reader(start = 0, end = Number.POSITIVE_INFINITY): Readable {
    this.readers++;
    let position = start;
    let reading = false;
    const stream: Readable = new Readable({
      read: () => void pump(),
      destroy: (err, done) => {
        this.readers--;
        this.closeIfIdle();
        done(err);
      },
    });
    const last = (): number => Math.min(end + 1, this.done ? this.received : Math.min(this.received, this.size - 1));
    const pump = async (): Promise<void> => {
      if (reading || stream.destroyed) return;
      if (position < last() && this.handle) {
        reading = true;
        try {
          const fd = await this.handle;
          const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, last() - position));
          const { bytesRead } = await fd.read(buffer, 0, buffer.length, position);
          position += bytesRead;
          reading = false;
          if (stream.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead))) void pump();
        } catch (err) {
          stream.destroy(err as Error);
        }
        return;
      }
      if (this.error) stream.destroy(this.error);
      else if (position > end || (this.done && position >= this.received)) stream.push(null);
      else this.onProgress(() => void pump());
    };
    return stream;
  }

  private closeIfIdle(): void {
    if (this.sealed && this.readers === 0 && this.handle) {
      const handle = this.handle;
      this.handle = null;
      void handle.then((fd) => fd.close()).catch(() => {});
    }
  }

  private wake(): void {
    const wakers = this.wakers;
    this.wakers = [];
    for (const wake of wakers) wake();
  }
}
