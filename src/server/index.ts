import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KarasuConfig } from '../config/types.js';
import { createCache } from '../cache/build.js';
import { createKarasu, type Karasu, type KarasuOptions } from './app.js';

export interface RunningKarasu {
  karasu: Karasu;
  url: string;
  port: number;
  /** The separate metrics listener's port, when `metrics.port` is set. */
  metricsPort: number | null;
  /** Stops accepting, lets in-flight requests finish for up to `timeoutMs`, then closes everything. */
  close(timeoutMs?: number): Promise<void>;
}

export async function startKarasu(config: KarasuConfig, options: Omit<KarasuOptions, 'cache'>): Promise<RunningKarasu> {
  const cache = await createCache(config.cache, options.logger);
  const karasu = await createKarasu(config, { ...options, cache });
  const { app } = karasu;
  await app.listen({ host: config.server.address, port: config.server.port });
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const urlHost = host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host;

  const metricsServer = config.metrics.enabled && config.metrics.port !== null ? await startMetricsListener(karasu, config) : null;

  return {
    karasu,
    url: `http://${urlHost}:${address.port}`,
    port: address.port,
    metricsPort: metricsServer ? (metricsServer.address() as AddressInfo).port : null,
    async close(timeoutMs = config.server.shutdown_timeout_seconds * 1000) {
      karasu.draining = true;
      metricsServer?.close();
      const closed = app.close();
      // Idle keep-alive sockets would hold the server open; busy ones finish their response first.
      app.server.closeIdleConnections();
      const deadline = setTimeout(() => app.server.closeAllConnections(), timeoutMs);
      deadline.unref();
      await closed;
      clearTimeout(deadline);
    },
  };
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
