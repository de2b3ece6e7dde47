import { Readable } from 'node:stream';

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

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
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

  /** The whole body; only once done. */
  body(): Buffer {
    return this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.received);
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
