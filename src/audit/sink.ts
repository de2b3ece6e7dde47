import type { AuditOutput } from '../config/types.js';

/**
 * One audit output. `write` never blocks and never throws: it queues the line in a bounded buffer, or
 * drops it (counted) when the output has fallen too far behind.
 */
export interface AuditSink {
  readonly output: AuditOutput;
  /** `line` ends with '\n'; `severity` is the RFC 5424 severity; `time` ms since the epoch. */
  write(line: string, severity: number, time: number): void;
  /** Lines handed to the destination (file, socket, uploaded object). */
  readonly written: number;
  /** Lines dropped: buffer full, destination failing, or still unsent at the shutdown deadline. */
  readonly dropped: number;
  /** Sends what is buffered, waiting at most until `deadline` (ms since the epoch); then closes. */
  close(deadline: number): Promise<void>;
}

/** Waits until `done()` or the deadline, polling (the sinks have no single event for "drained"). */
export async function waitUntil(done: () => boolean, deadline: number, stepMs = 10): Promise<boolean> {
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return true;
}
