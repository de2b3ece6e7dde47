import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Within glibc's limit for its dynamic threshold (32 MiB on 64-bit), so the raise takes effect. */
const RAISE_TO_BYTES = 16 * 1024 * 1024;

/**
 * Keeps freed C heap memory for reuse instead of handing it back to the kernel after every batch.
 *
 * A streamed body costs Node two 64 KiB allocations per chunk (the socket read and the HTTP client's
 * copy of the body bytes), which the garbage collector frees in batches. glibc's malloc trims the freed
 * top of its heap as soon as it exceeds 128 KiB and grows it again for the next chunks: brk calls and a
 * page fault for every 4 KiB. Measured on a 256 MiB pass-through that made Karasu's CPU per byte 3–4×
 * that of the copies themselves (docs/design.md, "Streaming and the C heap").
 *
 * glibc raises its mmap threshold to the size of a freed mmapped chunk (up to 32 MiB), and its trim
 * threshold to twice that, unless the operator fixed them (MALLOC_TRIM_THRESHOLD_ and friends). One
 * 16 MiB buffer, freed at start-up, therefore lets up to 32 MiB of freed heap stay mapped. Other
 * allocators (musl) ignore the exercise; it costs one full GC at start-up.
 */
export function keepFreedHeapMapped(): void {
  let buffer: Buffer | null = Buffer.allocUnsafeSlow(RAISE_TO_BYTES);
  buffer[0] = 1;
  buffer = null;
  // The buffer's memory is freed when the collector finds it dead; collect now rather than whenever.
  setFlagsFromString('--expose-gc');
  try {
    (runInNewContext('gc') as () => void)();
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
