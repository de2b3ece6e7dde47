import http from 'node:http';
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { KarasuConfig } from '../config/types.js';
import { errorBody, HttpError, methodNotAllowed, notFound } from '../http/errors.js';
import { requestIdFrom } from '../http/request-id.js';
import { createMetrics, registerCacheMetrics, upstreamEvents, type Metrics } from '../observability/metrics.js';
import { createContext, type RequestContext } from '../pipeline/context.js';
import { sendError } from '../respond/respond.js';
import { trustedProxies } from '../http/client-ip.js';
import { proxy } from '../pipeline/pipeline.js';
import { checkRequestLimits } from '../protect/limits.js';
import { buildSnapshot, releaseSnapshot, retireSnapshot, type Snapshot } from '../runtime/snapshot.js';
import { createAuthServices } from '../auth/runtime.js';
import type { ClientTestHooks } from '../upstream/s3-client.js';
import { cacheShape } from '../cache/build.js';
import type { FillContext } from '../cache/fill.js';
import type { TieredCache } from '../cache/tiered.js';
import type { Logger } from '../observability/logger.js';
import { registerHealthRoutes } from './health.js';
import { adminRoutes } from '../admin/routes.js';
import { PrewarmManager } from '../admin/prewarm.js';
import { AuditLog, auditMetrics, replyFacts, type AuditOptions } from '../audit/audit-log.js';
import { Reloader } from '../reload/reloader.js';
import { VERSION } from '../version.js';

export interface KarasuOptions {
  logger: Logger;
  /** Built before the server (tiers open files and connections); survives reloads. */
  cache: TieredCache | null;
  /** Only tests set these (see upstream/s3-client.ts). */
  clientHooks?: ClientTestHooks;
  /** Tests only (see audit/audit-log.ts). */
  auditOptions?: AuditOptions;
  /** The environment `${VAR}`s are substituted from when the config file is reloaded (default: process.env). */
  configEnv?: NodeJS.ProcessEnv;
}

export interface Karasu {
  readonly app: FastifyInstance<http.Server, http.IncomingMessage, http.ServerResponse, Logger>;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly cache: FillContext | null;
  /** The snapshot new requests start on. */
  current(): Snapshot;
  /**
   * Builds a snapshot from a validated configuration and swaps it in at once; requests in flight finish
   * on the one they started with. Reloads run one at a time. Resolves with what needs a restart.
   */
  reload(config: KarasuConfig): Promise<{ needsRestart: string[] }>;
  draining: boolean;
  inflight: number;
  startedAt: number;
  /** The audit log new lines go to; a reload that changes `audit_log` opens a new one and swaps it in. */
  readonly audit: AuditLog | null;
  /** Flushes the audit log, and the ones reloads replaced, waiting at most `timeoutMs`; later reloads open none. */
  closeAudit(timeoutMs: number): Promise<void>;
  /** Reloads from `config.source`; null when the config was not loaded from a file. */
  readonly reloader: Reloader | null;
  /** Prewarm tasks; null when the cache is off. */
  readonly prewarm: PrewarmManager | null;
}

/** Milliseconds the audit outputs get to flush: on shutdown (after the requests in flight), or once a reload replaced them. */
export const AUDIT_FLUSH_MS = 10_000;

const PROXY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const SERVED_FROM_CACHE = new Set(['HIT', 'STALE', 'REVALIDATED']);

/** Paths Karasu answers itself; they bypass the concurrency cap so probes work under load. */
const OWN_PATHS = new Set(['/health', '/ready', '/metrics']);
/** The admin API, when it is served on the proxy listener: not capped either (purges under load). */
const ADMIN_PATHS = /^\/admin(?:$|[/?])/;

export async function createKarasu(config: KarasuConfig, options: KarasuOptions): Promise<Karasu> {
  const { logger } = options;
  const metrics = createMetrics();
  const events = upstreamEvents(metrics, (msg, fields) => logger.warn(fields, msg));
  const cache: FillContext | null = options.cache
    ? { cache: options.cache, log: logger, fills: new Map(), coalesce: () => snapshot.config.server.coalescing.enabled }
    : null;
  if (options.cache) registerCacheMetrics(metrics, options.cache);
  const startShape = cacheShape(config.cache);
  // JWKS clients live as long as the instance: shared by every snapshot, stopped on close.
  const auth = createAuthServices({ auth: metrics.authResults, jwksRefresh: metrics.jwksRefreshes }, logger);
  const auditCounts = auditMetrics(metrics.registry);
  // Until `karasu` exists; from then on `karasu.audit` is the one current log.
  let audit: AuditLog | null = null;
  /** Audit logs a reload replaced, still flushing. */
  const retiring = new Set<Promise<void>>();
  let auditClosed = false;
  let snapshot: Snapshot;
  try {
    audit = await AuditLog.create(config.audit_log, logger, options.auditOptions);
    snapshot = await buildSnapshot(config, 1, events, cache !== null, options.clientHooks, auth);
  } catch (err) {
    auth.close();
    await audit?.close(0);
    throw err;
  }
  if (audit) auditCounts.track(audit);
  /** After the snapshot swap: new lines go to `next` at once, the replaced log flushes in the background. */
  const swapAudit = (next: AuditLog | null) => {
    const previous = karasu.audit;
    (karasu as { audit: AuditLog | null }).audit = next;
    if (next) auditCounts.track(next);
    if (previous) {
      const closing = previous.close(AUDIT_FLUSH_MS);
      retiring.add(closing);
      void closing.finally(() => retiring.delete(closing));
    }
  };
  let reloading: Promise<unknown> = Promise.resolve();
  metrics.generation.set(1);
  // Node's parser gives up above this; the configured (reloadable) limits are checked below it.
  const parserHeaderCap = config.server.security_limits.max_header_size + config.server.security_limits.max_uri_length + 1024;

  const adminHere = config.admin.port === null;
  // One listener function for every response (the context rides on the response), so a request
  // allocates no closure for its log phase.
  const onResponseClose = function (this: http.ServerResponse): void {
    finish(karasu, (this as ResponseWithContext)[CONTEXT]);
  };
  const app = Fastify({
    ...ownEndpointOptions(logger),
    routerOptions: { maxParamLength: 1 << 20 },
    // Proxy requests go straight to the pipeline; fastify serves Karasu's own endpoints. Fastify's
    // per-request routing, hooks and request/reply objects cost more than the whole cache-hit path.
    serverFactory: (fastifyHandler) =>
      http.createServer({ maxHeaderSize: parserHeaderCap }, (req, res) => {
        if (isOwnEndpoint(req.url ?? '/', adminHere)) fastifyHandler(req, res);
        else handleProxy(karasu, req, res, onResponseClose);
      }),
    clientErrorHandler: (err: Error, socket: Socket) =>
      answerClientError(err as ParserError, socket, logger, snapshot.config.server.security_limits.max_uri_length),
    frameworkErrors: (err, request, reply) => {
      void replyError(reply as FastifyReply, request.id, new HttpError(400, 'BadRequest', err.message));
    },
  });

  const karasu: Karasu = {
    app,
    metrics,
    log: logger,
    cache,
    current: () => snapshot,
    reload(next) {
      const run = reloading.then(async () => {
        const previous = snapshot;
        const needsRestart: string[] = [];
        const before = previous.config.server;
        if (before.address !== next.server.address || before.port !== next.server.port) needsRestart.push('server.address/server.port');
        if (next.server.security_limits.max_header_size + next.server.security_limits.max_uri_length + 1024 > parserHeaderCap) {
          needsRestart.push('server.security_limits (raised above the start-up header cap)');
        }
        if (cacheShape(next.cache) !== startShape) needsRestart.push('cache (tiers, sizes, Redis)');
        const auditChanged = !auditClosed && JSON.stringify(previous.config.audit_log) !== JSON.stringify(next.audit_log);
        // Opened before the swap: an output that cannot be opened fails the reload, and nothing changes.
        const nextAudit = auditChanged ? await AuditLog.create(next.audit_log, logger, options.auditOptions, karasu.audit) : karasu.audit;
        let built: Snapshot;
        try {
          built = await buildSnapshot(next, previous.generation + 1, events, cache !== null, options.clientHooks, auth);
        } catch (err) {
          if (auditChanged) await nextAudit?.close(0);
          throw err;
        }
        snapshot = built;
        if (auditChanged) swapAudit(nextAudit);
        metrics.generation.set(built.generation);
        retireSnapshot(previous);
        return { needsRestart };
      });
      reloading = run.catch(() => {});
      return run;
    },
    draining: false,
    inflight: 0,
    startedAt: Date.now(),
    audit,
    async closeAudit(timeoutMs) {
      auditClosed = true;
      // A reload that is opening a new log finishes first, so its log is the one closed here.
      await reloading;
      await Promise.all([karasu.audit?.close(timeoutMs), ...retiring]);
    },
    reloader: null,
    prewarm: cache ? new PrewarmManager({ fill: cache, snapshot: () => snapshot, log: logger.child({ component: 'prewarm' }) }) : null,
  };
  if (config.source) (karasu as { reloader: Reloader | null }).reloader = new Reloader(karasu, config.source, options.configEnv);
  refusalAudit.set(app, (request, reply) => {
    if (karasu.audit) reply.raw.once('finish', () => karasu.audit?.recordReply(replyFacts(request, reply, null), karasu.current().config.server.trusted_proxies));
  });

  app.addHook('onRequest', (request, reply, done) => {
    const limits = snapshot.config.server.security_limits;
    const refused = checkRequestLimits(request.raw, limits);
    if (!refused) return done();
    metrics.rejected.inc({ reason: refused.code });
    void replyError(reply, request.id, refused);
  });

  registerHealthRoutes(karasu);
  if (adminHere) void app.register(adminRoutes, { karasu });

  app.setNotFoundHandler((request, reply) => {
    const err = PROXY_METHODS.has(request.method) ? notFound() : methodNotAllowed();
    void replyError(reply, request.id, err);
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status >= 500) request.log.error({ err: error, request_id: request.id }, 'request failed');
    void replyError(reply, request.id, new HttpError(status, status >= 500 ? 'InternalError' : 'BadRequest', status >= 500 ? 'Karasu failed to handle the request' : error.message));
  });
  app.addHook('onClose', async () => {
    await karasu.prewarm?.close();
    auth.close();
    retireSnapshot(snapshot);
    await options.cache?.close();
  });
  return karasu;
}

/** What every fastify instance Karasu serves its own endpoints from shares (proxy and admin listeners). */
export function ownEndpointOptions(logger: Logger) {
  return {
    loggerInstance: logger,
    // Karasu logs one line per request itself (see finish()), with the fields operators need.
    logController: new LogController({ disableRequestLogging: true }),
    // No pino child per request (fastify's default): Karasu's log lines carry request_id themselves.
    childLoggerFactory: (parent: FastifyBaseLogger) => parent,
    requestIdHeader: false as const,
    genReqId: (req: http.IncomingMessage) => requestIdFrom(req.headers),
  };
}

/** Proxy requests only: probes and the admin API must keep working under load. */
function overCapacity(karasu: Karasu): HttpError | null {
  if (karasu.draining) {
    return new HttpError(503, 'ShuttingDown', 'Karasu is shutting down', { 'retry-after': '1', connection: 'close' });
  }
  if (karasu.inflight <= karasu.current().config.server.max_concurrent_requests) return null;
  return new HttpError(503, 'TooManyRequests', 'Karasu is at its limit of concurrent requests', { 'retry-after': '1' });
}

/** Karasu's own endpoints, served by fastify; everything else is a proxy request. */
function isOwnEndpoint(url: string, adminHere: boolean): boolean {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  return OWN_PATHS.has(path) || (adminHere && ADMIN_PATHS.test(path));
}

const CONTEXT = Symbol('karasu.context');
type ResponseWithContext = http.ServerResponse & { [CONTEXT]: RequestContext };

/** The proxy's own entry point: protect (limits, capacity, draining), then the pipeline. */
function handleProxy(karasu: Karasu, req: http.IncomingMessage, res: http.ServerResponse, onClose: (this: http.ServerResponse) => void): void {
  const snapshot = karasu.current();
  snapshot.inflight++;
  karasu.inflight++;
  karasu.metrics.inflight.inc();
  const ctx = createContext(req, res, requestIdFrom(req.headers), snapshot);
  (res as ResponseWithContext)[CONTEXT] = ctx;
  // A response closes once (finished or cut short), so a plain listener is enough.
  res.on('close', onClose);
  const refused = checkRequestLimits(req, snapshot.config.server.security_limits) ?? overCapacity(karasu);
  if (refused) {
    karasu.metrics.rejected.inc({ reason: refused.code });
    sendError(ctx, refused);
    return;
  }
  const running = proxy(ctx, karasu.cache);
  if (running) running.catch((err: unknown) => karasu.log.error({ err, request_id: ctx.id }, 'proxy failed'));
}

/** The log phase: once per request, when the response is done or the client gone. */
function finish(karasu: Karasu, ctx: RequestContext): void {
  karasu.inflight--;
  karasu.metrics.inflight.dec();
  releaseSnapshot(ctx.snapshot);
  const status = ctx.res.statusCode;
  const bucket = ctx.bucket?.config.name ?? '-';
  const seconds = (performance.now() - ctx.startedAt) / 1000;
  karasu.metrics.requests.inc({ bucket, method: ctx.method, status });
  karasu.metrics.duration.observe(bucket, seconds);
  if (ctx.bytesSent > 0) {
    karasu.metrics.bytesSent.inc({ bucket }, ctx.bytesSent);
    if (karasu.cache && status < 300 && SERVED_FROM_CACHE.has(ctx.cacheStatus!)) {
      karasu.cache.cache.bucketStats(bucket).bytes_from_cache += ctx.bytesSent;
    }
  }
  const complete = ctx.res.writableFinished;
  const { audit } = karasu;
  if (audit !== null) {
    audit.record({
      req: ctx.req,
      id: ctx.id,
      method: ctx.method,
      path: ctx.pathname,
      status,
      bytesSent: ctx.bytesSent,
      durationMs: seconds * 1000,
      user: ctx.user,
      bucket: ctx.bucket?.config.name ?? null,
      objectKey: ctx.bucket ? ctx.key : null,
      cacheStatus: ctx.cacheStatus,
      cacheTier: ctx.cacheTier,
      upstreamStatus: ctx.upstreamStatus,
      complete,
      trustedProxies: ctx.snapshot.config.server.trusted_proxies,
    });
  }
  if (status >= 500 || !complete) {
    karasu.log.warn(requestFields(ctx, status, seconds, complete), complete ? 'request failed' : 'response incomplete');
  } else if (status >= 400) {
    karasu.log.info(requestFields(ctx, status, seconds, complete), 'request refused');
  } else if (karasu.log.isLevelEnabled('debug')) {
    karasu.log.debug(requestFields(ctx, status, seconds, complete), 'request');
  }
}

/**
 * Refusals Karasu answers before the proxy phase (limits, overload, 405, parse errors) are audited when
 * they finish; proxied requests are audited from finish(), admin calls by the admin routes.
 */
const refusalAudit = new WeakMap<object, (request: FastifyRequest, reply: FastifyReply) => void>();

/** Only built for lines that are logged (failures, refusals, debug), so the hot path never pays for it. */
function requestFields(ctx: RequestContext, status: number, seconds: number, complete: boolean) {
  const clientIp = trustedProxies(ctx.snapshot.config.server.trusted_proxies).clientIp(ctx.req.socket.remoteAddress, ctx.req.headers['x-forwarded-for']);
  return {
    request_id: ctx.id,
    client_ip: clientIp,
    method: ctx.method,
    path: ctx.pathname,
    bucket: ctx.bucket?.config.name,
    status,
    upstream_status: ctx.upstreamStatus,
    replica: ctx.replica,
    bytes: ctx.bytesSent,
    duration_ms: Math.round(seconds * 1000 * 100) / 100,
    complete,
  };
}

const BAD_REQUEST = [400, 'BadRequest', 'The request could not be parsed'] as const;

/** The parser counts the request line into its header limit: a huge URI is a 414, not a 431. */
function overflowAnswer(raw: Buffer | undefined, maxUriLength: number): readonly [number, string, string] {
  const lineEnd = raw ? raw.indexOf('\r\n') : -1;
  const requestLine = lineEnd === -1 ? (raw?.length ?? 0) : lineEnd;
  if (lineEnd === -1 || requestLine > maxUriLength) return [414, 'UriTooLong', `The request URI is longer than ${maxUriLength} bytes`];
  return [431, 'HeadersTooLarge', 'The request headers are too large'];
}

function replyError(reply: FastifyReply, requestId: string, err: HttpError) {
  refusalAudit.get(reply.server)?.(reply.request, reply);
  if (err.headers) reply.headers(err.headers);
  return reply
    .code(err.status)
    .header('x-request-id', requestId)
    .header('cache-control', 'no-store')
    .type('application/json; charset=utf-8')
    .send(errorBody(err.status, err.code, err.message, requestId));
}

/** Requests Node's parser rejects never reach a handler; they still get a JSON answer and a log line. */
type ParserError = NodeJS.ErrnoException & { rawPacket?: Buffer };

function answerClientError(
  err: ParserError,
  socket: Socket,
  logger: Logger,
  maxUriLength: number,
): void {
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const [status, code, message] = err.code === 'HPE_HEADER_OVERFLOW' ? overflowAnswer(err.rawPacket, maxUriLength) : BAD_REQUEST;
  const id = requestIdFrom({});
  const body = errorBody(status, code, message, id);
  logger.info({ request_id: id, status, reason: err.code }, 'malformed request');
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${id}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export { VERSION };
