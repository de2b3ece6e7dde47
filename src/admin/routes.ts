// The admin API (PRODUCT §5; paths and answers compatible with Yatagarasu's): reload, purge, stats,
// entry info, prewarm tasks. A Fastify plugin, registered on the proxy listener or on the admin
// listener (`admin.port`). Answers are JSON: `{"status":"success", …}` or
// `{"status":"error", "error": CODE, "message": …, "request_id": …}`.
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { replyFacts } from '../audit/audit-log.js';
import { cacheKey, type CacheMeta } from '../cache/types.js';
import { HttpError } from '../http/errors.js';
import type { Karasu } from '../server/app.js';
import { authenticateAdmin } from './auth.js';
import type { PrewarmRequest } from './prewarm.js';

/** The admin caller of a request (for the audit log). */
export const adminUsers = new WeakMap<IncomingMessage, string | null>();

/** Methods each admin path answers; anything else under /admin is 404 (unknown path) or 405. */
const ROUTES: Array<[RegExp, string]> = [
  [/^\/admin\/reload$/, 'POST'],
  [/^\/admin\/cache\/purge(?:\/.*)?$/, 'POST'],
  [/^\/admin\/cache\/stats(?:\/[^/]+)?$/, 'GET, HEAD'],
  [/^\/admin\/cache\/info$/, 'GET, HEAD'],
  [/^\/admin\/cache\/prewarm$/, 'POST'],
  [/^\/admin\/cache\/prewarm\/tasks$/, 'GET, HEAD'],
  [/^\/admin\/cache\/prewarm\/status\/[^/]+$/, 'GET, HEAD'],
  [/^\/admin\/cache\/prewarm\/[^/]+$/, 'DELETE'],
];

type Body = Record<string, unknown> | undefined;

export async function adminRoutes(app: FastifyInstance, opts: { karasu: Karasu }): Promise<void> {
  const { karasu } = opts;

  // Empty bodies (curl -X POST, k6 posting null) are fine; only JSON is read, anything else ignored.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
    const s = String(text).trim();
    if (s === '') return done(null, undefined);
    try {
      done(null, JSON.parse(s));
    } catch {
      done(new HttpError(400, 'BadRequest', 'The request body is not valid JSON'), undefined);
    }
  });
  app.addContentTypeParser('*', (_req, payload, done) => {
    payload.resume();
    payload.on('end', () => done(null, undefined));
    payload.on('error', (err) => done(err, undefined));
  });

  app.addHook('onRequest', async (request, reply) => {
    void reply.header('x-request-id', request.id).header('cache-control', 'no-store');
    const identity = await authenticateAdmin(request.raw, karasu.current());
    adminUsers.set(request.raw, identity.user);
  });

  // Every admin call is audited, with its caller.
  app.addHook('onResponse', (request, reply, done) => {
    karasu.audit?.recordReply(replyFacts(request, reply, adminUsers.get(request.raw) ?? null), karasu.current().config.server.trusted_proxies);
    done();
  });

  app.setErrorHandler((error, request, reply) => {
    if (error instanceof HttpError) {
      if (error.headers) void reply.headers(error.headers);
      return fail(reply, request, error.status, error.code, error.message);
    }
    const { statusCode: status, message } = error as { statusCode?: number; message?: string };
    if (status && status >= 400 && status < 500) return fail(reply, request, status, 'BadRequest', message ?? 'Bad request');
    karasu.log.error({ err: error, request_id: request.id }, 'admin request failed');
    return fail(reply, request, 500, 'InternalError', 'The admin request failed');
  });

  // ─── reload ───────────────────────────────────────────────────────────────────────────────────────

  app.post('/admin/reload', async (request, reply) => {
    if (!karasu.reloader) {
      return fail(reply, request, 503, 'ReloadUnavailable', 'This instance was not started from a config file; there is nothing to reload');
    }
    const outcome = await karasu.reloader.reload('admin');
    if (!outcome.ok) {
      return fail(reply, request, 400, 'InvalidConfig', 'Configuration reload failed; the running configuration is kept', {
        errors: outcome.error.split('\n'),
        issues: outcome.issues,
      });
    }
    return ok(reply, {
      message: 'Configuration reloaded',
      generation: outcome.generation,
      needs_restart: outcome.needsRestart,
      warnings: outcome.warnings,
    });
  });

  // ─── purge ────────────────────────────────────────────────────────────────────────────────────────

  app.post('/admin/cache/purge', async (request, reply) => {
    const cache = needCache(karasu);
    const { soft, prefix } = purgeOptions(request);
    if (prefix !== undefined) throw new HttpError(400, 'BadRequest', '`prefix` needs a bucket: POST /admin/cache/purge/{bucket}?prefix=…');
    const n = soft ? await cache.markStale({}) : await cache.purge({});
    return ok(reply, { message: soft ? 'Cache marked stale' : 'Cache purged successfully', soft, ...counted(soft, n), timestamp: now() });
  });

  app.post<{ Params: { bucket: string } }>('/admin/cache/purge/:bucket', async (request, reply) => {
    const cache = needCache(karasu);
    const bucket = knownBucket(karasu, request.params.bucket);
    const { soft, prefix } = purgeOptions(request);
    const filter = prefix === undefined ? { bucket } : { bucket, prefix };
    const n = soft ? await cache.markStale(filter) : await cache.purge(filter);
    return ok(reply, {
      message: soft ? 'Bucket cache marked stale' : 'Bucket cache purged successfully',
      bucket,
      ...(prefix === undefined ? {} : { prefix }),
      soft,
      ...counted(soft, n),
      timestamp: now(),
    });
  });

  app.post<{ Params: { bucket: string; '*': string } }>('/admin/cache/purge/:bucket/*', async (request, reply) => {
    const cache = needCache(karasu);
    const bucket = knownBucket(karasu, request.params.bucket);
    const key = request.params['*'];
    if (key === '') throw new HttpError(400, 'BadRequest', 'No object key after the bucket');
    const { soft, prefix } = purgeOptions(request);
    if (prefix !== undefined) throw new HttpError(400, 'BadRequest', '`prefix` is for POST /admin/cache/purge/{bucket}; this path names one key');
    const done = soft ? await cache.markStaleKey(cacheKey(bucket, key)) : await cache.purgeKey(cacheKey(bucket, key));
    return ok(reply, {
      message: done ? (soft ? 'Object marked stale' : 'Object purged successfully') : 'Object was not cached',
      bucket,
      path: key,
      soft,
      [soft ? 'marked_stale' : 'deleted']: done,
      timestamp: now(),
    });
  });

  // ─── stats, info ──────────────────────────────────────────────────────────────────────────────────

  app.get('/admin/cache/stats', async (_request, reply) => {
    const cache = needCache(karasu);
    const { tiers, buckets } = cache.stats();
    let hits = 0;
    let misses = 0;
    for (const b of Object.values(buckets)) {
      hits += b.hits + b.stale + b.revalidated;
      misses += b.misses;
    }
    const tierList = Object.values(tiers);
    return ok(reply, {
      data: {
        hits,
        misses,
        hit_rate: (hits + misses === 0 ? 0 : hits / (hits + misses)).toFixed(4),
        evictions: sum(tierList.map((t) => t.evictions)),
        current_size_bytes: sum(tierList.map((t) => t.bytes)),
        current_item_count: sum(tierList.map((t) => t.entries)),
        max_size_bytes: sum(tierList.map((t) => t.maxBytes)),
        tiers,
        buckets,
      },
      timestamp: now(),
    });
  });

  app.get<{ Params: { bucket: string } }>('/admin/cache/stats/:bucket', async (request, reply) => {
    const cache = needCache(karasu);
    const bucket = knownBucket(karasu, request.params.bucket);
    const stats = cache.stats().buckets[bucket] ?? {
      hits: 0,
      misses: 0,
      stale: 0,
      revalidated: 0,
      bypass: 0,
      bytes_from_cache: 0,
      bytes_from_s3: 0,
      hit_ratio: 0,
    };
    return ok(reply, { bucket, data: stats, timestamp: now() });
  });

  app.get<{ Querystring: { key?: string } }>('/admin/cache/info', async (request, reply) => {
    const cache = needCache(karasu);
    const raw = request.query.key;
    if (typeof raw !== 'string' || raw === '') throw new HttpError(400, 'BadRequest', 'Query parameter `key` is required: ?key=bucket:object/key');
    const names = [...karasu.current().buckets.keys()].sort((a, b) => b.length - a.length);
    const bucket = names.find((name) => raw.startsWith(`${name}:`) && raw.length > name.length + 1);
    if (bucket === undefined) {
      if (!raw.includes(':')) throw new HttpError(400, 'BadRequest', '`key` must be `bucket:object/key`');
      throw new HttpError(404, 'NoSuchBucket', `No bucket named '${raw.slice(0, raw.indexOf(':'))}' in the configuration`);
    }
    const objectKey = raw.slice(bucket.length + 1);
    const key = cacheKey(bucket, objectKey);
    let meta: CacheMeta | null = null;
    const inTiers: string[] = [];
    for (const tier of cache.tiers) {
      if (!tier.available) continue;
      const hit = await tier.get(key).catch(() => null);
      if (!hit) continue;
      inTiers.push(tier.name);
      meta ??= hit.meta;
    }
    if (!meta) throw new HttpError(404, 'NotCached', `'${raw}' is not in the cache`);
    const m: CacheMeta = meta;
    const t = Date.now();
    return ok(reply, {
      data: {
        key: raw,
        bucket,
        object_key: objectKey,
        tiers: inTiers,
        size: m.size,
        etag: m.etag,
        last_modified: m.lastModified,
        content_type: m.headers['content-type'] ?? null,
        stored_at: new Date(m.storedAt).toISOString(),
        fresh_until: new Date(m.freshUntil).toISOString(),
        fresh: m.freshUntil > t,
        ttl_seconds: Math.max(0, Math.floor((m.freshUntil - t) / 1000)),
      },
      timestamp: now(),
    });
  });

  // ─── prewarm ──────────────────────────────────────────────────────────────────────────────────────

  app.post('/admin/cache/prewarm', async (request, reply) => {
    needCache(karasu);
    const task = karasu.prewarm!.create(prewarmRequest(request.body as Body));
    return ok(reply, { task_id: task.id, message: 'Prewarm task created', task }, 201);
  });

  app.get('/admin/cache/prewarm/tasks', async (_request, reply) => {
    needCache(karasu);
    return ok(reply, { tasks: karasu.prewarm!.list() });
  });

  app.get<{ Params: { id: string } }>('/admin/cache/prewarm/status/:id', async (request, reply) => {
    needCache(karasu);
    const task = karasu.prewarm!.get(request.params.id);
    if (!task) throw new HttpError(404, 'NoSuchTask', `No prewarm task '${request.params.id}'`);
    return ok(reply, { task });
  });

  app.delete<{ Params: { id: string } }>('/admin/cache/prewarm/:id', async (request, reply) => {
    needCache(karasu);
    const before = karasu.prewarm!.get(request.params.id);
    if (!before) throw new HttpError(404, 'NoSuchTask', `No prewarm task '${request.params.id}'`);
    if (before.state !== 'running') {
      return fail(reply, request, 409, 'TaskFinished', `The task has already ended (${before.state})`, { task: before });
    }
    const task = karasu.prewarm!.cancel(request.params.id)!;
    return ok(reply, { message: 'Prewarm task cancelled', task });
  });

  // ─── anything else under /admin ───────────────────────────────────────────────────────────────────

  app.all('/admin', (request, reply) => unknownAdminPath(request, reply));
  app.all('/admin/*', (request, reply) => unknownAdminPath(request, reply));
}

function unknownAdminPath(request: FastifyRequest, reply: FastifyReply) {
  const path = request.url.split('?')[0];
  const route = ROUTES.find(([re]) => re.test(path));
  if (route) {
    void reply.header('allow', route[1]);
    return fail(reply, request, 405, 'MethodNotAllowed', `${request.method} is not allowed here (allowed: ${route[1]})`);
  }
  return fail(reply, request, 404, 'NotFound', `No admin endpoint at ${path}`);
}

function ok(reply: FastifyReply, body: Record<string, unknown>, code = 200) {
  return reply.code(code).type('application/json; charset=utf-8').send({ status: 'success', ...body });
}

function fail(reply: FastifyReply, request: FastifyRequest, status: number, error: string, message: string, extra: Record<string, unknown> = {}) {
  return reply
    .code(status)
    .header('x-request-id', request.id)
    .header('cache-control', 'no-store')
    .type('application/json; charset=utf-8')
    .send({ status: 'error', error, message, request_id: request.id, ...extra });
}

function needCache(karasu: Karasu) {
  if (!karasu.cache) throw new HttpError(404, 'CacheDisabled', 'Cache is not enabled');
  return karasu.cache.cache;
}

function knownBucket(karasu: Karasu, name: string): string {
  if (!karasu.current().buckets.has(name)) throw new HttpError(404, 'NoSuchBucket', `No bucket named '${name}' in the configuration`);
  return name;
}

/** `soft` and `prefix`, from the query string or a JSON body. */
function purgeOptions(request: FastifyRequest): { soft: boolean; prefix: string | undefined } {
  const query = (request.query ?? {}) as Record<string, unknown>;
  const body = (request.body ?? {}) as Record<string, unknown>;
  if (typeof body !== 'object' || Array.isArray(body)) throw new HttpError(400, 'BadRequest', 'The body must be a JSON object');
  const soft = flag(body.soft ?? query.soft, 'soft');
  const prefix = body.prefix ?? query.prefix;
  if (prefix !== undefined && typeof prefix !== 'string') throw new HttpError(400, 'BadRequest', '`prefix` must be a string');
  return { soft, prefix: prefix === undefined ? undefined : prefix.replace(/^\/+/, '') };
}

function flag(value: unknown, name: string): boolean {
  if (value === undefined || value === false || value === 'false' || value === '0' || value === '') return false;
  if (value === true || value === 'true' || value === '1') return true;
  throw new HttpError(400, 'BadRequest', `\`${name}\` must be true or false`);
}

function prewarmRequest(body: Body): PrewarmRequest {
  if (body === undefined || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'BadRequest', 'The body must be a JSON object: {"bucket": NAME, "path": PREFIX}');
  }
  const { bucket } = body;
  if (typeof bucket !== 'string' || bucket === '') throw new HttpError(400, 'BadRequest', '`bucket` (a bucket name from the configuration) is required');
  const path = body.path ?? body.prefix ?? '';
  if (typeof path !== 'string') throw new HttpError(400, 'BadRequest', '`path` must be a string');
  const recursive = body.recursive === undefined ? true : body.recursive;
  if (typeof recursive !== 'boolean') throw new HttpError(400, 'BadRequest', '`recursive` must be true or false');
  return {
    bucket,
    prefix: path.replace(/^\/+/, ''),
    recursive,
    maxDepth: count(body.max_depth, 'max_depth', 0),
    maxFiles: count(body.max_files, 'max_files', 1),
  };
}

function count(value: unknown, name: string, min: number): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new HttpError(400, 'BadRequest', `\`${name}\` must be an integer ≥ ${min}`);
  }
  return value;
}

function counted(soft: boolean, n: number) {
  return soft ? { entries_marked_stale: n } : { entries_deleted: n };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function now(): string {
  return new Date().toISOString();
}
