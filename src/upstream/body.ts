import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { Call } from './http1/pool.js';
import type { Lease } from './http1/read-buffers.js';

/** Bytes held for a body nobody reads yet before the socket is paused. */
const HOLD_LIMIT = 64 * 1024;

function ignore(): void {}

/** What `held` becomes once the body has left HOLD: nothing is held again after that. */
const NO_CHUNKS: Buffer[] = [];
const NO_LEASES: Lease[] = [];

const HOLD = 0;
const COPY = 1;
const RELAY = 2;

/** Counts what reached the client (the request context's). */
export interface SentCounter {
  bytesSent: number;
}

/**
 * The body of a 200/206 from S3. Its bytes arrive as views of reused read buffers (read-buffers.ts), so
 * how they may be used depends on who takes them:
 *
 * - `relayTo(res)`, the usual case for a body going straight to one client: each view is written to the
 *   response as it is and its buffer is released when the write has been handed to the kernel. Nothing
 *   is copied or allocated per chunk.
 * - any Readable consumer (a cache fill, a range transform, `pipe`, `for await`): each view is copied into
 *   a buffer of its own, which that consumer may keep as long as it likes.
 *
 * Until one of them starts, up to HOLD_LIMIT bytes wait (as views) and the socket pauses. Backpressure
 * pauses the S3 socket; destroying the body (the client left) aborts the request.
 */
export class UpstreamBody extends Readable {
  private mode = HOLD;
  private held: Buffer[] = [];
  private heldLeases: Lease[] = [];
  private heldBytes = 0;
  /** S3's answer is complete (every byte delivered to this body). */
  private complete = false;
  private res: ServerResponse | null = null;
  private counter: SentCounter | null = null;
  private relayEnded = false;
  private relayResolve: (() => void) | null = null;
  private relayReject: ((err: Error) => void) | null = null;

  constructor(private readonly call: Call) {
    super({ highWaterMark: 64 * 1024 });
    // S3 may fail before any consumer has attached (a fill waiting to be claimed): an 'error' with no
    // listener would end the process. Consumers still see the failure: relay() by the early 'close',
    // async iteration by the stored error, 'error' listeners attached before it happened by the event.
    this.on('error', ignore);
  }

  /** True while nothing has read this body: relayTo() may take it. */
  get relayable(): boolean {
    return this.mode === HOLD && !this.destroyed;
  }

  /** From the connection: `chunk` views `lease`'s buffer, held once for this body. */
  deliver(chunk: Buffer, lease: Lease): void {
    if (this.destroyed || this.relayEnded) {
      lease.release();
      return;
    }
    if (this.mode === RELAY) {
      this.writeOut(chunk, lease);
    } else if (this.mode === COPY) {
      const copy = Buffer.from(chunk);
      lease.release();
      if (!this.push(copy)) this.call.pause();
    } else {
      this.held.push(chunk);
      this.heldLeases.push(lease);
      this.heldBytes += chunk.length;
      if (this.heldBytes >= HOLD_LIMIT) this.call.pause();
    }
  }

  /** From the connection: the answer is complete. */
  finish(): void {
    this.complete = true;
    if (this.mode === RELAY) this.endRelay();
    else if (this.mode === COPY) this.push(null);
  }

  /** From the connection: the answer broke off. */
  fail(err: Error): void {
    if (this.mode === RELAY) this.failRelay(err);
    else this.destroy(err);
  }

  override _read(): void {
    if (this.mode === HOLD) {
      this.mode = COPY;
      for (let i = 0; i < this.held.length; i++) {
        this.push(Buffer.from(this.held[i]!));
        this.heldLeases[i]!.release();
      }
      this.clearHeld();
      if (this.complete) {
        this.push(null);
        return;
      }
    }
    this.call.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    for (const lease of this.heldLeases) lease.release();
    this.clearHeld();
    if (!this.complete) this.call.abort(err ?? new Error('body abandoned'));
    callback(err);
  }

  /**
   * Writes the whole body to `res` (whose head has been written) and ends it, with backpressure; settles
   * when the response has finished. As relay() in respond.ts: S3 failing or ending short destroys the
   * response, the client leaving aborts the request to S3. Only while `relayable`.
   */
  relayTo(res: ServerResponse, counter: SentCounter): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.mode = RELAY;
      this.res = res;
      this.counter = counter;
      this.relayResolve = resolve;
      this.relayReject = reject;
      // `on` for errors: failRelay is idempotent, and a second error without a listener would crash the process.
      res.on('error', (err: Error) => this.failRelay(err));
      res.once('close', () => {
        if (!res.writableFinished) this.failRelay(new Error('the client closed the connection'));
      });
      res.once('finish', () => {
        this.relayEnded = true;
        this.relayResolve = null;
        this.relayReject = null;
        resolve();
        this.destroy();
      });
      res.on('drain', () => this.call.resume());
      const held = this.held;
      const leases = this.heldLeases;
      this.clearHeld();
      for (let i = 0; i < held.length; i++) this.writeOut(held[i]!, leases[i]!);
      if (this.complete) this.endRelay();
      else if (!res.writableNeedDrain) this.call.resume();
    });
  }

  private writeOut(chunk: Buffer, lease: Lease): void {
    this.counter!.bytesSent += chunk.length;
    // The buffer goes back for reuse only once the kernel has the bytes (the write's callback). A chunk
    // larger than the socket's high-water mark always makes write() answer false, even when the kernel
    // took all of it at once: pause only when bytes are really waiting, which saves two epoll_ctl calls
    // per chunk ('drain' still resumes a paused socket).
    const res = this.res!;
    if (!res.write(chunk, lease.releaser) && res.writableLength > 0) this.call.pause();
  }

  private endRelay(): void {
    if (this.relayEnded) return;
    this.res!.end();
  }

  private failRelay(err: Error): void {
    const reject = this.relayReject;
    if (!reject) return;
    this.relayResolve = null;
    this.relayReject = null;
    this.relayEnded = true;
    // The client must see a cut, never a complete-looking body.
    this.res!.destroy();
    this.destroy();
    reject(err);
  }

  private clearHeld(): void {
    this.held = NO_CHUNKS;
    this.heldLeases = NO_LEASES;
    this.heldBytes = 0;
  }
}
