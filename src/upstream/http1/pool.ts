import net from 'node:net';
import tls from 'node:tls';
import { takeLease, type Lease } from './read-buffers.js';
import { ResponseParser, ResponseParseError, type ResponseEvents } from './response-parser.js';

/**
 * Keep-alive HTTP/1.1 connections to one S3 endpoint, for object GETs and HEADs: at most `connections`
 * sockets, requests queued in order when all are busy, idle sockets reused newest first and closed after
 * `keepAliveMs` (or sooner when the server's Keep-Alive says so).
 *
 * Why not undici, which Karasu used before: its sockets read into a fresh buffer per read and its
 * parser copies every chunk into WebAssembly memory; here sockets read into reused buffers
 * (read-buffers.ts) and body bytes go on as views of them. See docs/design.md, "Upstream reads".
 */
export interface Http1PoolOptions {
  /** Where the TCP connection goes. */
  host: string;
  port: number;
  secure: boolean;
  /** TLS server name (SNI and certificate check). */
  servername: string;
  connections: number;
  connectTimeoutMs: number;
  /** Longest silence while a body is being received (time paused by a slow client does not count). */
  bodyTimeoutMs: number;
  keepAliveMs?: number;
}

export interface RequestHead {
  method: 'GET' | 'HEAD';
  path: string;
  /** Sent as given (the signed set, Host included). */
  headers: Record<string, string>;
}

/**
 * What a request's owner is told, in this order: onResponseStart once, onResponseData any number of
 * times, then onResponseEnd or onResponseError, exactly one of them, once. onResponseError may also come
 * first (no answer at all).
 */
export interface ResponseHandler {
  onResponseStart(call: Call, status: number, headers: Record<string, string | string[]>): void;
  /** `chunk` is a view of `lease`'s buffer, held once for the handler: release it when done with the bytes. */
  onResponseData(call: Call, chunk: Buffer, lease: Lease): void;
  onResponseEnd(call: Call): void;
  onResponseError(call: Call, err: Error): void;
}

/** The body went silent for longer than the pool's body timeout. */
export class BodyTimeoutError extends Error {
  readonly code = 'BODY_TIMEOUT';
}

/** The TCP (and TLS) connection was not established in time. */
export class ConnectTimeoutError extends Error {
  readonly code = 'CONNECT_TIMEOUT';
}

const DEFAULT_KEEP_ALIVE_MS = 4000;
/** A server's Keep-Alive timeout is trusted minus this margin, so Karasu never sends on a socket the server is closing. */
const KEEP_ALIVE_MARGIN_MS = 1000;

/** One request: its place in the queue or on a connection, and its controls. */
export class Call {
  connection: Connection | null = null;
  /** Ended: answered in full, failed or aborted. */
  done = false;
  paused = false;
  /** Already sent again once after a reused connection turned out to be closed. */
  retried = false;

  constructor(
    readonly pool: Http1Pool,
    readonly head: RequestHead,
    readonly handler: ResponseHandler,
  ) {}

  /** Ends the request (the connection is closed if it was in use). The handler's onResponseError follows. */
  abort(err: Error): void {
    if (this.done) return;
    this.done = true;
    const connection = this.connection;
    this.connection = null;
    if (connection) connection.drop(this);
    else this.pool.unqueue(this);
    this.handler.onResponseError(this, err);
  }

  /** Stops reading the answer (backpressure); the body timeout stops counting. */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.connection?.pauseReading();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.connection?.resumeReading();
  }

  /** Ends with an answer or a failure the connection saw. */
  end(err: Error | null): void {
    if (this.done) return;
    this.done = true;
    this.connection = null;
    if (err) this.handler.onResponseError(this, err);
    else this.handler.onResponseEnd(this);
  }
}

export class Http1Pool {
  private readonly idle: Connection[] = [];
  private readonly queue: Call[] = [];
  /** Open or opening connections. */
  private open = 0;
  private closed = false;
  readonly keepAliveMs: number;
  /** The last TLS session the server offered: new sockets resume it instead of a full handshake. */
  tlsSession: Buffer | undefined;

  constructor(readonly options: Http1PoolOptions) {
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
  }

  /** Sends a request; everything after comes through `handler`. */
  request(head: RequestHead, handler: ResponseHandler): Call {
    const call = new Call(this, head, handler);
    if (this.closed) {
      call.end(new Error('the connection pool is closed'));
      return call;
    }
    this.queue.push(call);
    this.dispatch();
    return call;
  }

  /**
   * No new requests. Those already accepted still run, queued ones included (a reload retires a pool
   * while its requests are in flight); idle sockets close now, busy ones once nothing is left to send.
   */
  close(): void {
    this.closed = true;
    for (const connection of this.idle.splice(0)) connection.socket.destroy();
  }

  unqueue(call: Call): void {
    const at = this.queue.indexOf(call);
    if (at !== -1) this.queue.splice(at, 1);
  }

  /** Starts queued requests on idle connections, opening new ones up to the limit. */
  private dispatch(): void {
    while (this.queue.length > 0) {
      const idle = this.idle.pop();
      if (idle) {
        idle.start(this.queue.shift()!);
        continue;
      }
      if (this.open >= this.options.connections) return;
      this.open++;
      new Connection(this).start(this.queue.shift()!);
    }
  }

  /** A connection finished an answer and may carry another. */
  released(connection: Connection, keepAliveMs: number): void {
    if (keepAliveMs <= 0) {
      connection.socket.destroy();
      return;
    }
    const next = this.queue.shift();
    if (next) {
      connection.start(next);
      return;
    }
    if (this.closed) {
      connection.socket.destroy();
      return;
    }
    connection.park(keepAliveMs);
    this.idle.push(connection);
  }

  /** A connection is gone (its own call, if any, has been told). */
  lost(connection: Connection): void {
    this.open--;
    const at = this.idle.indexOf(connection);
    if (at !== -1) this.idle.splice(at, 1);
    this.dispatch();
  }

  /**
   * Sends `call` again on a new connection: a reused one was closed by the server before answering (its
   * keep-alive ran out as the request went). GET and HEAD are safe to repeat. The closing socket still
   * counts until its close event, so this may briefly be one over the limit.
   */
  retry(call: Call): void {
    call.retried = true;
    this.open++;
    new Connection(this).start(call);
  }
}

/** One socket and the answer it is reading. */
class Connection implements ResponseEvents {
  readonly socket: net.Socket;
  private readonly parser = new ResponseParser(this);
  /** The buffer the socket reads into next. */
  private lease: Lease | null = null;
  /** The buffer being parsed, while it is. */
  private reading: Lease | null = null;
  private call: Call | null = null;
  private connected = false;
  private connectTimer: NodeJS.Timeout | null = null;
  /** Answers completed on this socket: a reused socket that closes before answering is retried once. */
  private served = 0;
  private keepAliveMs = 0;
  private error: Error | null = null;
  private gone = false;
  /** The answer ended in the buffer being parsed: the socket goes back to the pool after it. */
  private answered = false;

  constructor(private readonly pool: Http1Pool) {
    const o = pool.options;
    const onread: net.OnReadOpts = {
      buffer: () => this.nextBuffer(),
      callback: (n) => {
        this.onRead(n);
        return true; // pausing is explicit (pauseReading)
      },
    };
    // tls.connect passes `onread` on to its socket (Node ≥ 12.x); its typings leave it out.
    const tlsOptions: tls.ConnectionOptions & { onread: net.OnReadOpts } = {
      host: o.host,
      port: o.port,
      servername: net.isIP(o.servername) ? undefined : o.servername,
      session: pool.tlsSession,
      onread,
    };
    this.socket = o.secure ? tls.connect(tlsOptions) : net.connect({ host: o.host, port: o.port, onread, noDelay: true });
    this.connectTimer = setTimeout(() => {
      this.socket.destroy(new ConnectTimeoutError(`connecting to ${o.host}:${o.port} took longer than ${o.connectTimeoutMs} ms`));
    }, o.connectTimeoutMs);
    this.socket.once(o.secure ? 'secureConnect' : 'connect', () => this.onConnect());
    if (o.secure) this.socket.on('session', (session: Buffer) => (pool.tlsSession = session));
    this.socket.on('error', (err) => (this.error ??= err));
    this.socket.on('timeout', () => this.onTimeout());
    this.socket.once('end', () => this.onEof());
    this.socket.once('close', () => this.onClose());
  }

  /** Runs `call` on this socket: now when connected, else once it is. */
  start(call: Call): void {
    this.call = call;
    call.connection = this;
    this.socket.setTimeout(0);
    if (this.connected) this.send(call);
  }

  /** Idle in the pool: closed when the keep-alive time runs out. */
  park(keepAliveMs: number): void {
    this.socket.setTimeout(keepAliveMs);
  }

  pauseReading(): void {
    this.socket.pause();
    this.socket.setTimeout(0);
  }

  resumeReading(): void {
    if (this.gone) return;
    this.socket.setTimeout(this.pool.options.bodyTimeoutMs);
    this.socket.resume();
  }

  /** `call` gave up while on this socket: the rest of its answer would be in the way, so the socket goes. */
  drop(call: Call): void {
    if (this.call !== call) return;
    this.call = null;
    this.socket.destroy();
  }

  private onConnect(): void {
    this.connected = true;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    if (this.call) this.send(this.call);
  }

  private send(call: Call): void {
    this.parser.expect(call.head.method);
    this.keepAliveMs = 0;
    let head = `${call.head.method} ${call.head.path} HTTP/1.1\r\n`;
    const headers = call.head.headers;
    for (const name in headers) {
      const value = headers[name]!;
      if (FORBIDDEN_IN_VALUE.test(value)) {
        // Never put a line break of a client's header into the request to S3.
        call.abort(new Error(`invalid character in request header ${name}`));
        return;
      }
      head += `${name}: ${value}\r\n`;
    }
    this.socket.write(head + '\r\n', 'latin1');
  }

  private nextBuffer(): Buffer {
    this.lease = takeLease();
    return this.lease.buffer;
  }

  private onRead(n: number): void {
    const lease = this.lease!;
    this.lease = null; // nextBuffer() follows this callback
    if (!this.call || !this.parser.busy) {
      lease.release();
      // Bytes nobody asked for (no request in flight): the socket can no longer be trusted.
      this.fail(new ResponseParseError('the server sent data without a request'));
      return;
    }
    this.reading = lease;
    let used = 0;
    try {
      used = this.parser.execute(lease.buffer, 0, n);
    } catch (err) {
      this.fail(err as Error);
    } finally {
      this.reading = null;
      lease.release();
    }
    if (!this.answered) return;
    // Handed back only now, so the next request's answer never starts inside this buffer.
    this.answered = false;
    if (used < n) this.fail(new ResponseParseError('the server sent more than the answer'));
    else if (!this.gone) this.pool.released(this, this.keepAliveMs);
  }

  onHead(status: number, headers: Record<string, string | string[]>, keepAlive: boolean): void {
    this.keepAliveMs = keepAlive ? keepAliveFor(headers['keep-alive'], this.pool.keepAliveMs) : 0;
    const call = this.call;
    if (!call) return;
    if (!call.paused) this.socket.setTimeout(this.pool.options.bodyTimeoutMs);
    call.handler.onResponseStart(call, status, headers);
  }

  onBody(buffer: Buffer, start: number, end: number): void {
    const call = this.call;
    if (!call || start === end) return;
    const lease = this.reading!;
    lease.hold();
    call.handler.onResponseData(call, buffer.subarray(start, end), lease);
  }

  onEnd(): void {
    const call = this.call;
    this.call = null;
    this.served++;
    this.answered = true;
    this.socket.setTimeout(0);
    if (!call) return;
    // The reader may have paused this socket; the next answer must be read.
    if (call.paused) this.socket.resume();
    call.end(null);
  }

  private onTimeout(): void {
    if (this.call) this.fail(new BodyTimeoutError(`no data from ${this.pool.options.host}:${this.pool.options.port} for ${this.pool.options.bodyTimeoutMs} ms`));
    else this.socket.destroy(); // idle for its keep-alive time
  }

  /** The server ended its side: an answer framed by the close completes, anything else is cut short. */
  private onEof(): void {
    this.keepAliveMs = 0;
    if (!this.call) return;
    if (this.parser.busy && this.parser.finishOnEof()) {
      this.answered = false;
      this.socket.destroy();
      return;
    }
    this.fail(null);
  }

  private onClose(): void {
    this.gone = true;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.lease?.release();
    this.lease = null;
    this.fail(null);
    this.pool.lost(this);
  }

  /** The socket is done for; its call (if any) fails, or is retried when a reused socket never answered. */
  private fail(err: Error | null): void {
    const call = this.call;
    this.call = null;
    if (!this.gone) this.socket.destroy();
    if (!call || call.done) return;
    call.connection = null;
    const reason = err ?? this.error;
    const neverAnswered = this.parser.received === 0 && !(reason instanceof ConnectTimeoutError);
    if (neverAnswered && this.served > 0 && !call.retried) {
      this.pool.retry(call);
      return;
    }
    call.end(reason ?? new Error(this.connected ? 'the server closed the connection before the answer was complete' : 'the connection closed while connecting'));
  }
}

const FORBIDDEN_IN_VALUE = /[\r\n\0]/;

/** `Keep-Alive: timeout=N` (seconds), less a margin, capped at the pool's own keep-alive time. */
function keepAliveFor(value: string | string[] | undefined, poolMs: number): number {
  if (value === undefined) return poolMs;
  const match = /timeout\s*=\s*(\d+)/i.exec(typeof value === 'string' ? value : value.join(','));
  if (!match) return poolMs;
  return Math.min(poolMs, Number(match[1]) * 1000 - KEEP_ALIVE_MARGIN_MS);
}
