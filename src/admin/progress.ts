// Progress of a prewarm task for `karasu warm`: a bar redrawn in place on a terminal, plain lines
// (only when something changed, at most once per interval) when the output is a file or a pipe.
import type { PrewarmTask } from './prewarm.js';

type Progress = Pick<PrewarmTask, 'listed' | 'warmed' | 'skipped' | 'failed' | 'bytes' | 'listing_done' | 'state'>;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

function done(p: Progress): number {
  return p.warmed + p.skipped + p.failed;
}

function counts(p: Progress): string {
  return `warmed ${p.warmed}, skipped ${p.skipped}, failed ${p.failed}, ${formatBytes(p.bytes)}`;
}

/** One terminal line: `[#######.............]  37/120 objects  warmed 30, skipped 5, failed 2, 1.2 MiB`. */
export function progressBar(p: Progress, width = 24): string {
  const total = p.listing_done ? p.listed : Math.max(p.listed, 1);
  const ratio = p.listed === 0 ? (p.listing_done ? 1 : 0) : Math.min(1, done(p) / total);
  const filled = Math.round(ratio * width);
  const of = p.listing_done ? String(p.listed) : `${p.listed}+`;
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(done(p)).padStart(of.length)}/${of} objects  ${counts(p)}`;
}

/** One plain line, for logs and pipes. */
export function progressLine(p: Progress): string {
  const of = p.listing_done ? `of ${p.listed}` : `of ${p.listed} listed so far`;
  return `prewarm: ${done(p)} ${of} objects done (${counts(p)})`;
}

export interface ProgressWriter {
  update(p: Progress): void;
  finish(p: Progress): void;
}

/** Writes to `out`: a redrawn bar when it is a terminal, else a line per change (at most every `everyMs`). */
export function progressWriter(out: NodeJS.WriteStream | NodeJS.WritableStream, everyMs = 1000): ProgressWriter {
  const tty = (out as NodeJS.WriteStream).isTTY === true;
  let last = '';
  let lastAt = 0;
  return {
    update(p) {
      if (tty) {
        const line = progressBar(p);
        if (line !== last) out.write(`\r${line}\x1b[K`);
        last = line;
        return;
      }
      const line = progressLine(p);
      if (line === last || Date.now() - lastAt < everyMs) return;
      out.write(`${line}\n`);
      last = line;
      lastAt = Date.now();
    },
    finish(p) {
      if (tty) out.write(`\r${progressBar(p)}\x1b[K\n`);
      else if (progressLine(p) !== last) out.write(`${progressLine(p)}\n`);
    },
  };
}
