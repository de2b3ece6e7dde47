// The upstream connection pool against small real TCP servers on loopback that answer (and misbehave)
// byte for byte: keep-alive reuse, the connection limit, a server closing a kept-alive socket, the body
// timeout (and that a paused reader is not timed out), the connect timeout, aborts, and read buffers
// coming back for reuse.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { BodyTimeoutError, ConnectTimeoutError, Http1Pool, type Call, type Http1PoolOptions, type ResponseHandler } from '../../src/upstream/http1/pool.js';
import { spareLeases } from '../../src/upstream/http1/read-buffers.js';

/** A server that hands each request (head text) to `answer` along with its socket. */
interface RawServer {
  port: number;
  connections: number;
  open: number;
  maxOpen: number;
  requests: string[];
  close(): Promise<void>;
}

async function rawServer(answer: (socket: Socket, request: string, index: number, connectionRequests: number) => void): Promise<RawServer> {
  const sockets = new Set<Socket>();
  const state: RawServer = { port: 0, connections: 0, open: 0, maxOpen: 0, requests: [], close: async () => {} };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    state.connections++;
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    let pending = '';
    let onThis = 0;
    socket.on('data', (data: Buffer) => {
      pending += data.toString('latin1');
      let end: number;
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        state.requests.push(head);
        answer(socket, head, state.requests.length - 1, ++onThis);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      state.open--;
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = (server.address() as AddressInfo).port;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return state;
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

interface Outcome {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  error: Error | null;
}

/** Collects one answer; `onData` may pause/resume the call. */
function collect(onData?: (call: Call, total: number) => void): { handler: ResponseHandler; done: Promise<Outcome> } {
  let resolve!: (o: Outcome) => void;
  const done = new Promise<Outcome>((r) => (resolve = r));
  const outcome: Outcome = { status: 0, headers: {}, body: Buffer.alloc(0), error: null };
  const parts: Buffer[] = [];
  let total = 0;
  const handler: ResponseHandler = {
    onResponseStart(_call, status, headers) {
      outcome.status = status;
      outcome.headers = headers;
    },
    onResponseData(call, chunk, lease) {
      parts.push(Buffer.from(chunk));
      total += chunk.length;
      lease.release();
      onData?.(call, total);
    },
    onResponseEnd() {
      outcome.body = Buffer.concat(parts);
      resolve(outcome);
    },
    onResponseError(_call, err) {
      outcome.body = Buffer.concat(parts);
      outcome.error = err;
      resolve(outcome);
    },
  };
  return { handler, done };
}

function pool(port: number, more: Partial<Http1PoolOptions> = {}): Http1Pool {
  return new Http1Pool({
    host: '127.0.0.1',
    port,
    secure: false,
    servername: '127.0.0.1',
    connections: 4,
    connectTimeoutMs: 2000,
    bodyTimeoutMs: 2000,
    ...more,
  });
}

const get = (p: Http1Pool, path = '/o', onData?: (call: Call, total: number) => void) => {
  const { handler, done } = collect(onData);
  const call = p.request({ method: 'GET', path, headers: { host: 'example' } }, handler);
  return { call, done };
};

const servers: RawServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
});
async function track(s: Promise<RawServer>): Promise<RawServer> {
  const server = await s;
  servers.push(server);
  return server;
}

describe('Http1Pool', () => {
  test('sends the request line and headers as given, and reuses the socket for the next request', async () => {
    const server = await track(rawServer((socket, _req, i) => socket.write(ok(`answer ${i}`))));
    const p = pool(server.port);
    const first = await get(p, '/bucket/a%20b').done;
    const second = await get(p, '/bucket/c').done;
    assert.equal(first.error, null);
    assert.equal(first.status, 200);
    assert.equal(first.body.toString(), 'answer 0');
    assert.equal(second.body.toString(), 'answer 1');
    assert.equal(server.requests[0], 'GET /bucket/a%20b HTTP/1.1\r\nhost: example');
    assert.equal(server.connections, 1, 'the second request went on the kept-alive socket');
    p.close();
  });

  test('never opens more than `connections` sockets; queued requests run in order as sockets free up', async () => {
    const server = await track(rawServer((socket, _req, i) => setTimeout(() => socket.write(ok(`n${i}`)), 30)));
    const p = pool(server.port, { connections: 2 });
    const calls = Array.from({ length: 7 }, (_, i) => get(p, `/o${i}`).done);
    const results = await Promise.all(calls);
    assert.deepEqual(
      results.map((r) => r.error),
      Array(7).fill(null),
    );
    assert.equal(server.maxOpen, 2);
    assert.equal(server.connections, 2);
    assert.deepEqual(
      server.requests.map((r) => r.split(' ')[1]),
      ['/o0', '/o1', '/o2', '/o3', '/o4', '/o5', '/o6'],
    );
    p.close();
  });

  test('a kept-alive socket the server closes instead of answering: the request is sent again on a new one', async () => {
    // Answers the first request on each connection, closes the connection at the second.
    const server = await track(
      rawServer((socket, _req, _i, onThis) => {
        if (onThis === 1) socket.write(ok('fresh'));
        else socket.destroy();
      }),
    );
    const p = pool(server.port);
    assert.equal((await get(p).done).body.toString(), 'fresh');
    const again = await get(p).done;
    assert.equal(again.error, null);
    assert.equal(again.body.toString(), 'fresh');
    assert.equal(server.connections, 2);
    assert.equal(server.requests.length, 3, 'one request lost to the closing socket, then sent again');
    p.close();
  });

  test('a new socket closed before any answer is an error, not retried', async () => {
    const server = await track(rawServer((socket) => socket.destroy()));
    const p = pool(server.port);
    const outcome = await get(p).done;
    assert.ok(outcome.error, 'an error');
    assert.match(outcome.error.message, /closed/);
    assert.equal(server.requests.length, 1);
    p.close();
  });

  test('an answer cut short mid-body is an error', async () => {
    const server = await track(
      rawServer((socket) => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n' + 'x'.repeat(40));
        setTimeout(() => socket.destroy(), 20);
      }),
    );
    const p = pool(server.port);
    const outcome = await get(p).done;
    assert.ok(outcome.error);
    assert.equal(outcome.body.length, 40);
    p.close();
  });

  test('a body that goes silent fails with the body timeout', async () => {
    const server = await track(rawServer((socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nxx')));
    const p = pool(server.port, { bodyTimeoutMs: 150 });
    const started = Date.now();
    const outcome = await get(p).done;
    assert.ok(outcome.error instanceof BodyTimeoutError, String(outcome.error));
    assert.ok(Date.now() - started >= 140);
    p.close();
  });

  test('time paused by the reader does not count against the body timeout', async () => {
    const body = 'y'.repeat(300_000);
    const server = await track(rawServer((socket) => socket.write(ok(body))));
    const p = pool(server.port, { bodyTimeoutMs: 150 });
    let paused = false;
    const outcome = await get(p, '/o', (call) => {
      if (paused) return;
      paused = true;
      call.pause();
      setTimeout(() => call.resume(), 400);
    }).done;
    assert.equal(outcome.error, null);
    assert.equal(outcome.body.toString(), body);
    p.close();
  });

  test('a TLS handshake that never completes fails with the connect timeout', async () => {
    const server = await track(rawServer(() => undefined)); // plain TCP: never answers a ClientHello
    const p = pool(server.port, { secure: true, servername: 'localhost', connectTimeoutMs: 150 });
    const outcome = await get(p).done;
    assert.ok(outcome.error instanceof ConnectTimeoutError, String(outcome.error));
    p.close();
  });

  test('an aborted request closes its socket; the next request gets a new one', async () => {
    const server = await track(
      rawServer((socket, _req, i) => {
        if (i === 0) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nabc');
        else socket.write(ok('second'));
      }),
    );
    const p = pool(server.port);
    const first = get(p, '/o', (call) => call.abort(new Error('client gone')));
    const outcome = await first.done;
    assert.equal(outcome.error?.message, 'client gone');
    assert.equal((await get(p).done).body.toString(), 'second');
    assert.equal(server.connections, 2);
    p.close();
  });

  test('bytes after a complete answer: the socket is not reused', async () => {
    const server = await track(rawServer((socket) => socket.write(ok('one') + 'HTTP/1.1 200 OK\r\n')));
    const p = pool(server.port);
    assert.equal((await get(p).done).body.toString(), 'one');
    assert.equal((await get(p).done).body.toString(), 'one');
    assert.equal(server.connections, 2);
    p.close();
  });

  test('Connection: close and a short Keep-Alive timeout end the socket after the answer', async () => {
    const server = await track(
      rawServer((socket, _req, i) => socket.write(ok('z', i === 0 ? 'connection: close\r\n' : 'keep-alive: timeout=1\r\n'))),
    );
    const p = pool(server.port);
    await get(p).done;
    await get(p).done;
    await get(p).done;
    assert.equal(server.connections, 3);
    p.close();
  });

  test('an idle socket is closed after the keep-alive time', async () => {
    const server = await track(rawServer((socket) => socket.write(ok('k'))));
    const p = pool(server.port, { keepAliveMs: 100 });
    await get(p).done;
    assert.equal(server.open, 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(server.open, 0);
    p.close();
  });

  test('read buffers come back for reuse once every holder released them', async () => {
    const body = 'r'.repeat(1_000_000);
    const server = await track(rawServer((socket) => socket.write(ok(body))));
    const p = pool(server.port);
    await get(p).done;
    const spare = spareLeases();
    for (let i = 0; i < 5; i++) assert.equal((await get(p).done).body.length, body.length);
    // A million bytes is at least 16 reads each time; without reuse every read would take a new buffer.
    assert.ok(spareLeases() <= spare + 1, `spare buffers grew from ${spare} to ${spareLeases()}`);
    assert.ok(spareLeases() > 0);
    p.close();
  });

  test('an answer without a length ends with the connection, and the next request gets a new socket', async () => {
    const server = await track(
      rawServer((socket, _req, i) => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil ');
        setTimeout(() => socket.end(`close ${i}`), 20);
      }),
    );
    const p = pool(server.port);
    const first = await get(p).done;
    assert.equal(first.error, null);
    assert.equal(first.body.toString(), 'until close 0');
    assert.equal((await get(p).done).body.toString(), 'until close 1');
    assert.equal(server.connections, 2);
    p.close();
  });

  test('a chunked answer split across writes arrives whole, and the socket is reused', async () => {
    const server = await track(
      rawServer((socket) => {
        socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel');
        setTimeout(() => socket.write('lo\r\n6;x=y\r\n world\r\n0\r\n\r\n'), 20);
      }),
    );
    const p = pool(server.port);
    assert.equal((await get(p).done).body.toString(), 'hello world');
    assert.equal((await get(p).done).body.toString(), 'hello world');
    assert.equal(server.connections, 1);
    p.close();
  });

  test('closing the pool lets the requests it accepted finish, queued ones too, then closes the sockets', async () => {
    const server = await track(rawServer((socket, _req, i) => setTimeout(() => socket.write(ok(`late ${i}`)), 30)));
    const p = pool(server.port, { connections: 1 });
    const first = get(p, '/a').done;
    const queued = get(p, '/b').done;
    p.close();
    const [a, b] = await Promise.all([first, queued]);
    assert.equal(a.error, null);
    assert.equal(b.error, null);
    assert.equal(a.body.toString(), 'late 0');
    assert.equal(b.body.toString(), 'late 1');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.open, 0, 'no socket left open');
  });

  test('a closed pool refuses new requests', async () => {
    const server = await track(rawServer((socket) => socket.write(ok('c'))));
    const p = pool(server.port);
    p.close();
    const outcome = await get(p).done;
    assert.match(outcome.error?.message ?? '', /closed/);
    assert.equal(server.connections, 0);
  });
});
