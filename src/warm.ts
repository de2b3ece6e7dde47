// `karasu warm`: fill the cache with every object under a prefix, showing progress.
//   -c FILE  in this process: the prewarm task manager of the admin API, run against the cache FILE
//            configures (its disk directory, its Redis). A Karasu started afterwards on that disk
//            directory, or sharing that Redis, serves the warmed objects as hits.
//   --url    asks the running instance at URL to do it (POST /admin/cache/prewarm) and follows the task.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PrewarmManager, type PrewarmRequest, type PrewarmTask } from './admin/prewarm.js';
import { progressWriter } from './admin/progress.js';
import { createCache } from './cache/build.js';
import type { FillContext } from './cache/fill.js';
import { ConfigError, loadConfigFile } from './config/load.js';
import type { KarasuConfig } from './config/types.js';
import { createLogger } from './observability/logger.js';
import { buildSnapshot, closeSnapshot } from './runtime/snapshot.js';
import type { UpstreamEvents } from './upstream/replica-set.js';

const USAGE = 'usage: karasu warm (-c FILE | --url URL [--token TOKEN]) BUCKET [PREFIX] [--max-files N] [--max-depth N] [--no-recursive]\n';

type Progress = Pick<PrewarmTask, 'listed' | 'warmed' | 'skipped' | 'failed' | 'bytes' | 'listing_done' | 'state' | 'error'>;

export async function warm(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        url: { type: 'string' },
        token: { type: 'string' },
        'max-files': { type: 'string' },
        'max-depth': { type: 'string' },
        'no-recursive': { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    process.stderr.write(`karasu warm: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [bucket, prefix = ''] = positionals;
  if (!bucket || positionals.length > 2 || (values.config === undefined) === (values.url === undefined)) {
    process.stderr.write(USAGE);
    return 2;
  }
  const count = (v: string | undefined, name: string, min: number): number | null => {
    if (v === undefined) return null;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}`);
    return n;
  };
  let request: PrewarmRequest;
  try {
    request = {
      bucket,
      prefix: prefix.replace(/^\/+/, ''),
      recursive: !values['no-recursive'],
      maxFiles: count(values['max-files'], 'max-files', 1),
      maxDepth: count(values['max-depth'], 'max-depth', 0),
    };
  } catch (err) {
    process.stderr.write(`karasu warm: ${(err as Error).message}\n`);
    return 2;
  }
  return values.url !== undefined
    ? remote(values.url, values.token ?? process.env.KARASU_ADMIN_TOKEN, request)
    : local(path.resolve(values.config!), request);
}

class UsageError extends Error {}

function report(task: Progress): number {
  const ok = task.state === 'completed' && task.failed === 0;
  if (task.state === 'failed') process.stderr.write(`karasu warm: the task failed: ${task.error}\n`);
  else if (task.state === 'cancelled') process.stderr.write('karasu warm: cancelled\n');
  else if (task.failed > 0) process.stderr.write(`karasu warm: ${task.failed} object(s) could not be fetched\n`);
  return ok ? 0 : 1;
}

// ─── in this process ──────────────────────────────────────────────────────────────────────────────

async function local(file: string, request: PrewarmRequest): Promise<number> {
  let config: KarasuConfig;
  try {
    ({ config } = await loadConfigFile(file));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (!config.cache.enabled) {
    process.stderr.write(`karasu warm: caching is off in ${file} (cache.enabled is false): nothing to warm\n`);
    return 1;
  }
  if (config.cache.cache_layers.every((layer) => layer === 'memory')) {
    process.stderr.write(
      'karasu warm: warning: only the memory tier is configured; what this process warms is gone when it exits. ' +
        'Use --url to have the running instance warm its own cache.\n',
    );
  }
  const log = createLogger({ level: 'warn', format: 'json' }, process.stderr);
  const cache = await createCache(config.cache, log);
  const events: UpstreamEvents = { breakerChanged() {}, attempt() {}, failover() {} };
  // Warming reads from S3 only: the authentication settings (and their key fetches) play no part.
  const plain = { ...config, jwt: null, buckets: config.buckets.map((b) => ({ ...b, auth: null })) } as KarasuConfig;
  const snapshot = await buildSnapshot(plain, 1, events, true);
  const fill: FillContext = { cache: cache!, log, fills: new Map(), coalesce: () => true };
  const manager = new PrewarmManager({ fill, snapshot: () => snapshot, log });
  let task: PrewarmTask;
  try {
    task = manager.create(request);
  } catch (err) {
    process.stderr.write(`karasu warm: ${(err as Error).message}\n`);
    closeSnapshot(snapshot);
    await cache!.close();
    return 1;
  }
  const onSignal = () => manager.cancel(task.id);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const out = progressWriter(process.stdout);
  const timer = setInterval(() => out.update(task), 200);
  try {
    await manager.wait(task.id);
  } finally {
    clearInterval(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  out.finish(task);
  closeSnapshot(snapshot);
  await cache!.close();
  return report(task);
}

// ─── through a running instance ───────────────────────────────────────────────────────────────────

async function remote(base: string, token: string | undefined, request: PrewarmRequest): Promise<number> {
  const url = base.replace(/\/+$/, '');
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const call = async (method: string, p: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await fetch(`${url}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let json: Record<string, unknown> = {};
    try {
      json = JSON.parse(text) as Record<string, unknown>;
    } catch {
      json = { message: text.slice(0, 200) };
    }
    return { status: res.status, json };
  };
  let created;
  try {
    created = await call('POST', '/admin/cache/prewarm', {
      bucket: request.bucket,
      path: request.prefix,
      recursive: request.recursive,
      max_files: request.maxFiles ?? undefined,
      max_depth: request.maxDepth ?? undefined,
    });
  } catch (err) {
    process.stderr.write(`karasu warm: cannot reach ${url}: ${(err as Error).message}\n`);
    return 1;
  }
  if (created.status !== 201) {
    process.stderr.write(`karasu warm: ${url} answered ${created.status}: ${String(created.json.message ?? '')}\n`);
    return 1;
  }
  const id = String(created.json.task_id);
  const onSignal = () => {
    void call('DELETE', `/admin/cache/prewarm/${encodeURIComponent(id)}`).catch(() => {});
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const out = progressWriter(process.stdout);
  let task = created.json.task as Progress;
  try {
    for (;;) {
      await new Promise((r) => setTimeout(r, 250));
      const res = await call('GET', `/admin/cache/prewarm/status/${encodeURIComponent(id)}`);
      if (res.status !== 200) {
        process.stderr.write(`\nkarasu warm: status of task ${id}: ${res.status} ${String(res.json.message ?? '')}\n`);
        return 1;
      }
      task = res.json.task as Progress;
      if (task.state !== 'running') break;
      out.update(task);
    }
  } catch (err) {
    process.stderr.write(`\nkarasu warm: lost ${url}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  out.finish(task);
  return report(task);
}
