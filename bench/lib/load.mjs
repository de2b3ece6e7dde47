// One measured load run against a URL: wrk when installed (pinned to the client CPU), else loadgen.mjs.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runBounded } from './procs.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * Resolves { rps, mbps, p50_ms, p99_ms, requests, errors, tool } (rps 0 and an `error` when the run failed).
 * `headers` ({ name: value }) are sent on every request (wrk `-H`, loadgen extra arguments).
 */
export async function runLoad({ url, connections, seconds, cpu, useWrk, headers = {} }) {
  const timeoutMs = (seconds + 30) * 1000;
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  const r = useWrk
    ? await runBounded(
        'wrk',
        ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency', ...lines.flatMap((h) => ['-H', h]), '-s', path.join(HERE, 'wrk-json.lua'), url],
        { timeoutMs, cpu },
      )
    : await runBounded(process.execPath, [path.join(HERE, 'loadgen.mjs'), url, String(connections), String(seconds), ...lines], { timeoutMs, cpu });
  return summarize(r, useWrk ? 'wrk' : 'node');
}

function summarize({ stdout, stderr, timedOut, code }, tool) {
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('WRKJSON '));
  if (!line) {
    const why = timedOut ? 'timed out' : `exit ${code}: ${(stderr || stdout).trim().split('\n').slice(-2).join(' ')}`;
    return { tool, rps: 0, mbps: 0, p50_ms: null, p99_ms: null, requests: 0, errors: 0, error: why };
  }
  const j = JSON.parse(line.slice('WRKJSON '.length));
  const secs = j.duration_us / 1e6 || 1;
  const errors = j.err_connect + j.err_read + j.err_write + j.err_status + j.err_timeout;
  return {
    tool,
    rps: j.requests / secs,
    mbps: j.bytes / secs / 1048576,
    p50_ms: j.p50_us / 1000,
    p99_ms: j.p99_us / 1000,
    requests: j.requests,
    errors,
    raw: j,
  };
}
