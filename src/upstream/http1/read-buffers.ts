/**
 * The buffers upstream sockets read into, reused.
 *
 * Node gives every socket read a fresh 64 KiB ArrayBuffer. While large objects stream, those buffers
 * stay alive for a few milliseconds (queued behind a slow client), long enough for a scavenge to
 * promote them; their memory then only comes back with a full mark-compact of the whole heap, which
 * V8 starts several times a second under that pressure. In a profile of 1 MiB misses, that marking
 * was the largest single cost of a Karasu miss (docs/design.md, "Upstream reads").
 *
 * So sockets read into buffers from this list (net's `onread`), and a buffer comes back once every
 * holder of a piece of it is done: the connection after parsing it, a client write after the kernel
 * took the bytes. A holder that never lets go costs only that one buffer, which the GC frees as usual.
 */
export const READ_BUFFER_SIZE = 64 * 1024;

/** Spare buffers kept (64 KiB each): enough for the reads in flight on a busy replica. */
const SPARE_LIMIT = 128;

/** A read buffer and the count of those still using part of it. */
export class Lease {
  readonly buffer = Buffer.allocUnsafeSlow(READ_BUFFER_SIZE);
  holders = 0;
  /** For write callbacks: made once per buffer, not per write. */
  readonly releaser = (): void => this.release();

  hold(): void {
    this.holders++;
  }

  release(): void {
    if (this.holders <= 0) return; // a holder let go twice: ignore rather than recycle a buffer in use
    if (--this.holders === 0 && spare.length < SPARE_LIMIT) spare.push(this);
  }
}

const spare: Lease[] = [];

/** A buffer to read into, held once by the caller. */
export function takeLease(): Lease {
  const lease = spare.pop() ?? new Lease();
  lease.holders = 1;
  return lease;
}

/** Spare buffers right now (tests). */
export function spareLeases(): number {
  return spare.length;
}
