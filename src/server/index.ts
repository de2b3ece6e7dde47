import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KarasuConfig } from '../config/types.js';
import { createCache } from '../cache/build.js';
import Fastify, { type FastifyInstance } from 'fastify';
import { adminRoutes } from '../admin/routes.js';
import type { Logger } from '../observability/logger.js';
import { watchConfigFile, type ConfigWatch } from '../reload/watch.js';
import { AUDIT_FLUSH_MS, createKarasu, ownEndpointOptions, type Karasu, type KarasuOptions } from './app.js';

export interface RunningKarasu {
  karasu: Karasu;
  url: string;
  port: number;
  /** The separate metrics listener's port, when `metrics.port` is set. */
  metricsPort: number | null;
  /** The separate admin listener's port, when `admin.port` is set. */
  adminPort: number | null;
  /** Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then closes everything. */
  close(timeoutMs?: number): Promise<void>;
}

export interface StartOptions extends Omit<KarasuOptions, 'cache'> {
  /** Reload when the config file (`config.source`) changes; `debounceMs` default 300. */
  watch?: boolean | { debounceMs: number };
}

export async function startKarasu(config: KarasuConfig, options: StartOptions): Promise<RunningKarasu> {
  const cache = await createCache(config.cache, options.logger);
  let karasu: Karasu;
  try {
    karasu = await createKarasu(config, { ...options, cache });
  } catch (err) {
    await cache?.close();
    throw err;
  }
  const { app } = karasu;
  let adminApp: AdminApp | null = null;
  try {
    await app.listen({ host: config.server.address, port: config.server.port });
    if (config.admin.port !== null) adminApp = await startAdminListener(karasu, config, options.logger);
  } catch (err) {
    await adminApp?.close();
    await app.close();
    await karasu.closeAudit(0);
    throw err;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const urlHost = host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host;

  const metricsServer = config.metrics.enabled && config.metrics.port !== null ? await startMetricsListener(karasu, config) : null;
  let watcher: ConfigWatch | null = null;
  if (options.watch && karasu.reloader) {
    const reloader = karasu.reloader;
    await reloader.prime();
    const debounceMs = typeof options.watch === 'object' ? options.watch.debounceMs : 300;
    watcher = watchConfigFile(reloader.file, () => void reloader.reload('watch'), debounceMs, (err) =>
      options.logger.warn({ err, file: reloader.file }, 'config file watch failed; reload with SIGHUP or POST /admin/reload'),
    );
  }
  let closing: Promise<void> | null = null;

  return {
    karasu,
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    metricsPort: metricsServer ? (metricsServer.address() as AddressInfo).port : null,
    adminPort: adminApp ? (adminApp.server.address() as AddressInfo).port : null,
    close(timeoutMs = config.server.shutdown_timeout_seconds * 1000) {
      closing ??= (async () => {
        // /ready answers 503 from here on; new connections are refused once app.close() has run.
        karasu.draining = true;
        watcher?.close();
        metricsServer?.close();
        const adminClosed = adminApp?.close();
        adminApp?.server.closeIdleConnections();
        const closed = app.close();
        // Idle keep-alive sockets would hold the server open; busy ones finish their response first.
        app.server.closeIdleConnections();
        const deadline = setTimeout(() => {
          app.server.closeAllConnections();
          adminApp?.server.closeAllConnections();
        }, timeoutMs);
        deadline.unref();
        await closed;
        await adminClosed;
        clearTimeout(deadline);
        // Responses cut at the deadline are logged (and audited) on their 'close' event: let those run.
        await new Promise((r) => setImmediate(r));
        await karasu.closeAudit(AUDIT_FLUSH_MS);
      })();
      return closing;
    },
  };
}

/** `admin.port`: the admin API on its own listener, and only there. */
type AdminApp = FastifyInstance<http.Server, http.IncomingMessage, http.ServerResponse, Logger>;

async function startAdminListener(karasu: Karasu, config: KarasuConfig, logger: Logger): Promise<AdminApp> {
  const admin = Fastify(ownEndpointOptions(logger));
  await admin.register(adminRoutes, { karasu });
  admin.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .header('x-request-id', request.id)
      .send({ status: 'error', error: 'NotFound', message: 'The admin listener serves /admin/* only', request_id: request.id });
  });
  try {
    await admin.listen({ host: config.admin.address, port: config.admin.port! });
  } catch (err) {
    await admin.close();
    throw err;
  }
  return admin;
}

async function startMetricsListener(karasu: Karasu, config: KarasuConfig): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    karasu.metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': karasu.metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.metrics.port!, config.metrics.address, resolve);
  });
  return server;
}
