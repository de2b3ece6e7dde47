// A counting HTTP relay between Karasu and s3rver: tests read how many requests (and body bytes)
// really reached the origin.
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';

export interface RelayStats {
  requests: number;
  byMethod: Record<string, number>;
  /** Response body bytes relayed back from the target. */
  bodyBytes: number;
  /** Request targets (path + query) in arrival order. */
  paths: string[];
}

export interface Relay {
  url: string; // http://127.0.0.1:PORT
  port: number;
  stats(): RelayStats;
  reset(): void;
  stop(): Promise<void>;
}

// Per-connection headers are not forwarded: each side of the relay has its own connection.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);

function endToEnd(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i].toLowerCase())) out.push(raw[i], raw[i + 1]);
  }
  return out;
}

export async function startRelay(targetUrl: string): Promise<Relay> {
  const target = new URL(targetUrl);
  const agent = new Agent({ keepAlive: true });
  let stats: RelayStats = { requests: 0, byMethod: {}, bodyBytes: 0, paths: [] };
  const sockets = new Set<Socket>();

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    stats.requests++;
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
    stats.paths.push(req.url ?? '/');

    // Headers go out as received, Host included: the client signed them (SigV4 covers Host), and
    // s3rver reads a Host that is not an IP as a bucket name, which 127.0.0.1:PORT is not.
    const upstream = httpRequest({
      host: target.hostname,
      port: target.port,
      method,
      path: req.url,
      headers: endToEnd(req.rawHeaders),
      agent,
    });
    upstream.on('response', (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, endToEnd(up.rawHeaders));
      up.on('data', (chunk: Buffer) => {
        stats.bodyBytes += chunk.length;
      });
      up.pipe(res);
      // A target that dies mid-body must look the same to the client: cut its connection too.
      up.on('close', () => {
        if (!up.complete) res.destroy();
      });
    });
    // A client that goes away stops the upstream transfer as well.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    // The target is down or reset before answering: drop the client's connection as the target
    // would have, rather than inventing a status.
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    stats: () => ({ ...stats, byMethod: { ...stats.byMethod }, paths: [...stats.paths] }),
    reset: () => {
      stats = { requests: 0, byMethod: {}, bodyBytes: 0, paths: [] };
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}
