// Small misbehaving HTTP servers on loopback, for timeout / retry / breaker tests.
import { createServer as createHttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';

export type FaultMode = 'stall-headers' | 'stall-body' | 'reset-mid-body' | 'status' | 'ignore-range';

export interface FaultOptions {
  /** 'status': the status to answer with (default 503). */
  status?: number;
  /** 'status': the S3 error code in the XML body (default derived from the status). */
  code?: string;
  /** 'status': extra response headers, e.g. { 'retry-after': '1' }. */
  headers?: Record<string, string>;
  /** 'stall-body' / 'reset-mid-body': the Content-Length announced (default 1 MiB). */
  contentLength?: number;
  /** 'stall-body' / 'reset-mid-body': bytes actually sent before stalling or resetting (default 1024). */
  sendBytes?: number;
  /** 'ignore-range': the whole body, answered with 200 to every GET, Range or not (default 'abcdefghij'). */
  body?: string;
}

export interface FaultyServer {
  url: string; // http://127.0.0.1:PORT
  port: number;
  /** Requests received so far (headers fully read). */
  readonly requests: number;
  stop(): Promise<void>;
}

const S3_CODES: Record<number, string> = {
  400: 'InvalidRequest',
  403: 'AccessDenied',
  404: 'NoSuchKey',
  500: 'InternalError',
  503: 'SlowDown',
};

export async function startFaultyServer(mode: FaultMode, opts: FaultOptions = {}): Promise<FaultyServer> {
  const contentLength = opts.contentLength ?? 1024 * 1024;
  const sendBytes = Math.min(opts.sendBytes ?? 1024, contentLength);
  let requests = 0;
  const sockets = new Set<Socket>();

  const partialBody = (res: ServerResponse, then: () => void): void => {
    res.writeHead(200, {
      'content-type': 'application/octet-stream',
      'content-length': String(contentLength),
      etag: '"faulty"',
      'last-modified': new Date(0).toUTCString(),
    });
    // The callback fires once the bytes are handed to the socket, so the client sees them first.
    res.write(Buffer.alloc(sendBytes, 0x61), then);
  };

  const server = createHttpServer((req, res) => {
    requests++;
    switch (mode) {
      case 'stall-headers':
        return; // never answer
      case 'stall-body':
        return partialBody(res, () => {}); // never finish
      case 'reset-mid-body':
        return partialBody(res, () => res.socket?.destroy());
      case 'ignore-range': {
        // An S3-compatible store without Range support: the whole object, whatever was asked for.
        const body = opts.body ?? 'abcdefghij';
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)), etag: '"whole"' });
        return res.end(req.method === 'HEAD' ? undefined : body);
      }
      case 'status': {
        const status = opts.status ?? 503;
        const code = opts.code ?? S3_CODES[status] ?? 'InternalError';
        const body =
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
          `<Message>faulty test server answered ${status}</Message><RequestId>FAULTY${requests}</RequestId></Error>`;
        res.writeHead(status, {
          'content-type': 'application/xml',
          'content-length': String(Buffer.byteLength(body)),
          ...opts.headers,
        });
        return res.end(req.method === 'HEAD' ? undefined : body);
      }
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // Node would otherwise answer a stalled request with 408 after its own timeouts: the stall must last.
  server.headersTimeout = 0;
  server.requestTimeout = 0;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get requests() {
      return requests;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port with nothing listening: connecting to it is refused (ECONNREFUSED). */
export function refusedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createNetServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}
