// Prewarm tasks: list a bucket prefix with ListObjectsV2 and fill the cache with every object, through
// the same coalesced fill a client's miss uses (so a prewarm and a client asking for the same object
// make one S3 request). `cache.warming.concurrency` objects are fetched at once, and at most
// `cache.warming.rate_limit` fetches start per second. Used by the admin API and by `karasu warm`.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { joinOrStartFill, type FillContext } from '../cache/fill.js';
import { cacheKey } from '../cache/types.js';
import { HttpError } from '../http/errors.js';
import type { Logger } from '../observability/logger.js';
import { releaseSnapshot, type BucketRuntime, type Snapshot } from '../runtime/snapshot.js';

export interface PrewarmRequest {
  /** Karasu bucket name (as in the config). */
  bucket: string;
  /** Object key prefix; '' = the whole bucket. */
  prefix: string;
  /** false: only the objects directly under `prefix` (no deeper `/`). */
  recursive: boolean;
  /** With recursive: how many `/` below the prefix a key may have (null: any). */
  maxDepth: number | null;
  /** Stop after this many objects (null: no limit). */
  maxFiles: number | null;
}

export type TaskState = 'running' | 'completed' | 'cancelled' | 'failed';

export interface PrewarmTask {
  id: string;
  bucket: string;
  prefix: string;
  recursive: boolean;
  max_depth: number | null;
  max_files: number | null;
  state: TaskState;
  created_at: string;
  finished_at: string | null;
  /** Keys listed (after the depth filter). */
  listed: number;
  /** Objects fetched from S3 and stored. */
  warmed: number;
  /** Objects already cached and fresh, or not cacheable (no-store, too large). */
  skipped: number;
  /** Objects S3 did not deliver (404, 403, errors). */
  failed: number;
  /** Body bytes fetched from S3. */
  bytes: number;
  /** Whether the listing is complete (the total is then `listed`). */
  listing_done: boolean;
  error: string | null;
}

interface Running {
  task: PrewarmTask;
  abort: AbortController;
  done: Promise<PrewarmTask>;
}

const PAGE_SIZE = 1000;
const KEPT_TASKS = 100;
const STORE_WAIT_MS = 30_000;

export interface PrewarmDeps {
  fill: FillContext;
  /** The snapshot a new task runs on (buckets, upstream clients, cache policies, warming settings). */
  snapshot(): Snapshot;
  log: Logger;
}

export class PrewarmManager {
  private readonly tasks = new Map<string, Running>();

  constructor(private readonly deps: PrewarmDeps) {}

  /** Starts a task. 404: unknown bucket; 400: bucket not cached. */
  create(request: PrewarmRequest): PrewarmTask {
    const snapshot = this.deps.snapshot();
    const bucket = snapshot.buckets.get(request.bucket);
    if (!bucket) throw new HttpError(404, 'NoSuchBucket', `No bucket named '${request.bucket}' in the configuration`);
    if (!bucket.cachePolicy) throw new HttpError(400, 'BucketNotCached', `Bucket '${request.bucket}' is not cached`);
    const task: PrewarmTask = {
      id: randomUUID(),
      bucket: request.bucket,
      prefix: request.prefix,
      recursive: request.recursive,
      max_depth: request.maxDepth,
      max_files: request.maxFiles,
      state: 'running',
      created_at: new Date().toISOString(),
      finished_at: null,
      listed: 0,
      warmed: 0,
      skipped: 0,
      failed: 0,
      bytes: 0,
      listing_done: false,
      error: null,
    };
    const abort = new AbortController();
    // The task keeps its snapshot's upstream clients open across reloads until it ends.
    snapshot.inflight++;
    const done = this.run(task, snapshot, bucket, abort.signal)
      .catch((err: unknown) => {
        if (abort.signal.aborted) return;
        task.state = 'failed';
        task.error = err instanceof Error ? err.message : String(err);
        this.deps.log.warn({ task: task.id, bucket: task.bucket, err }, 'prewarm task failed');
      })
      .then(() => {
        if (task.state === 'running') task.state = abort.signal.aborted ? 'cancelled' : 'completed';
        task.finished_at = new Date().toISOString();
        releaseSnapshot(snapshot);
        this.deps.log.info({ task: task.id, ...counts(task), state: task.state }, 'prewarm task finished');
        return task;
      });
    this.tasks.set(task.id, { task, abort, done });
    this.forgetOld();
    this.deps.log.info({ task: task.id, bucket: task.bucket, prefix: task.prefix }, 'prewarm task started');
    return task;
  }

  list(): PrewarmTask[] {
    return [...this.tasks.values()].map((r) => r.task);
  }

  get(id: string): PrewarmTask | null {
    return this.tasks.get(id)?.task ?? null;
  }

  /** Resolves when the task has ended (any state). */
  wait(id: string): Promise<PrewarmTask> {
    const running = this.tasks.get(id);
    if (!running) return Promise.reject(new Error(`no task ${id}`));
    return running.done;
  }

  /** Stops a running task: no new object is started; objects under way finish filling the cache. */
  cancel(id: string): PrewarmTask | null {
    const running = this.tasks.get(id);
    if (!running) return null;
    if (running.task.state === 'running') running.abort.abort();
    return running.task;
  }

  /** Cancels every running task and waits for them to end. */
  async close(): Promise<void> {
    for (const running of this.tasks.values()) running.abort.abort();
    await Promise.all([...this.tasks.values()].map((r) => r.done));
  }

  private forgetOld(): void {
    if (this.tasks.size <= KEPT_TASKS) return;
    for (const [id, running] of this.tasks) {
      if (this.tasks.size <= KEPT_TASKS) break;
      if (running.task.state !== 'running') this.tasks.delete(id);
    }
  }

  private async run(task: PrewarmTask, snapshot: Snapshot, bucket: BucketRuntime, signal: AbortSignal): Promise<void> {
    const { concurrency, rate_limit } = snapshot.config.cache.warming;
    const timeoutMs = snapshot.config.server.request_timeout * 1000;
    const pacer = new Pacer(rate_limit);
    const depthLimit = task.recursive ? task.max_depth : 0;
    let startAfter: string | undefined;
    let budget = task.max_files ?? Number.POSITIVE_INFINITY;

    while (!signal.aborted && budget > 0) {
      const page = await bucket.upstream.list(
        { prefix: task.prefix, startAfter, delimiter: task.recursive ? undefined : '/', maxKeys: PAGE_SIZE, signal },
        timeoutMs,
      );
      const keys: string[] = [];
      for (const { key } of page.keys) {
        if (budget <= 0) break;
        if (key.endsWith('/')) continue; // a "folder" marker object
        if (depthLimit !== null && depthOf(key, task.prefix) > depthLimit) continue;
        keys.push(key);
        budget--;
      }
      task.listed += keys.length;
      await mapLimit(keys, concurrency, signal, async (objectKey) => {
        await pacer.next(signal);
        if (signal.aborted) return;
        await this.warmOne(task, bucket, objectKey, timeoutMs);
      });
      if (!page.truncated || page.keys.length === 0) break;
      startAfter = page.keys[page.keys.length - 1].key;
    }
    task.listing_done = !signal.aborted;
  }

  private async warmOne(task: PrewarmTask, bucket: BucketRuntime, objectKey: string, timeoutMs: number): Promise<void> {
    const fc = this.deps.fill;
    const key = cacheKey(bucket.config.name, objectKey);
    const policy = bucket.cachePolicy!;
    try {
      if (await isFresh(fc, key)) {
        task.skipped++;
        return;
      }
      const { outcome } = joinOrStartFill(fc, { key, objectKey, bucket, policy, stale: null, timeoutMs });
      const result = await outcome;
      switch (result.kind) {
        case 'spool': {
          const { spool } = result;
          while (!spool.done && !spool.error) await new Promise<void>((resolve) => spool.onProgress(resolve));
          if (spool.error) throw spool.error;
          task.bytes += result.rep.size;
          if (!result.rep.storable) {
            task.skipped++;
            return;
          }
          // The entry is stored once the fill leaves the table of fills in progress.
          const deadline = Date.now() + STORE_WAIT_MS;
          while (fc.fills.get(key) === outcome && Date.now() < deadline) await sleep(5);
          task.warmed++;
          return;
        }
        case 'stream':
          // Not cacheable and too large to hold: nothing to warm.
          if (result.claim()) result.response.body?.destroy();
          task.skipped++;
          return;
        case 'answer':
          task.failed++;
          return;
        case 'not-modified':
          task.skipped++;
          return;
      }
    } catch (err) {
      task.failed++;
      this.deps.log.debug({ err, task: task.id, key: objectKey }, 'prewarm: object failed');
    }
  }
}

function counts(task: PrewarmTask) {
  const { listed, warmed, skipped, failed, bytes } = task;
  return { listed, warmed, skipped, failed, bytes };
}

function depthOf(key: string, prefix: string): number {
  const rest = key.slice(prefix.length);
  let depth = 0;
  for (let i = 0; i < rest.length; i++) if (rest.charCodeAt(i) === 47) depth++;
  return depth;
}

/** Fresh in some tier. Read from the tiers directly, so a prewarm does not count as cache traffic. */
async function isFresh(fc: FillContext, key: string): Promise<boolean> {
  const now = Date.now();
  for (const tier of fc.cache.tiers) {
    if (!tier.available) continue;
    const hit = await tier.get(key).catch(() => null);
    if (hit) return hit.meta.freshUntil > now;
  }
  return false;
}

/** At most `rate` starts per second, evenly spaced. */
class Pacer {
  private nextAt = 0;
  private readonly gapMs: number;

  constructor(rate: number) {
    this.gapMs = 1000 / rate;
  }

  async next(signal: AbortSignal): Promise<void> {
    const now = performance.now();
    const at = Math.max(now, this.nextAt);
    this.nextAt = at + this.gapMs;
    if (at > now) await sleep(at - now, undefined, { signal }).catch(() => {});
  }
}

async function mapLimit<T>(items: T[], limit: number, signal: AbortSignal, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length && !signal.aborted) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
