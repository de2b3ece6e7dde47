// Audit lines as RFC 5424 syslog messages: one UDP datagram per line, or a TCP stream framed by octet
// counting (RFC 6587 §3.4.1, as RFC 5425 does over TLS). The TCP connection reconnects by itself; lines
// wait in a bounded buffer meanwhile.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import { hostname } from 'node:os';
import type { AuditSyslogConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { waitUntil, type AuditSink } from './sink.js';

const FACILITY: Record<AuditSyslogConfig['facility'], number> = {
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

/** Bytes waiting for the TCP connection (kernel buffer not counted) before lines are dropped. */
const MAX_PENDING_BYTES = 4 * 1024 * 1024;
/** UDP sends not yet completed before lines are dropped. */
const MAX_INFLIGHT_DATAGRAMS = 4096;
/** A datagram larger than this is cut (IPv4 UDP payload limit, less headroom). */
const MAX_DATAGRAM = 65000;
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

/** RFC 5424 HOSTNAME: printable US-ASCII without spaces, at most 255 characters. */
function syslogHostname(): string {
  const name = hostname().replace(/[^\x21-\x7e]/g, '').slice(0, 255);
  return name === '' ? '-' : name;
}

export function formatRfc5424(facility: number, severity: number, time: number, host: string, pid: number, msg: string): string {
  return `<${facility * 8 + severity}>1 ${new Date(time).toISOString()} ${host} karasu ${pid} audit - ${msg}`;
}

abstract class SyslogSink implements AuditSink {
  readonly output = 'syslog' as const;
  written = 0;
  dropped = 0;
  protected readonly facility: number;
  private readonly host = syslogHostname();

  constructor(
    protected readonly config: AuditSyslogConfig,
    protected readonly log: Logger,
  ) {
    this.facility = FACILITY[config.facility];
  }

  protected message(line: string, severity: number, time: number): string {
    const msg = line.endsWith('\n') ? line.slice(0, -1) : line;
    return formatRfc5424(this.facility, severity, time, this.host, process.pid, msg);
  }

  abstract write(line: string, severity: number, time: number): void;
  abstract close(deadline: number): Promise<void>;
}

export class UdpSyslogSink extends SyslogSink {
  private readonly socket: UdpSocket;
  private inflight = 0;
  private closed = false;
  private lastError = 0;
  /** The server's address, resolved once (a name given to send() would be looked up per datagram). */
  private target: string;

  constructor(config: AuditSyslogConfig, log: Logger) {
    super(config, log);
    this.target = config.host;
    if (isIP(config.host) === 0) {
      lookup(config.host, { family: 4 }).then(
        (found) => (this.target = found.address),
        (err: Error) => this.warn(err),
      );
    }
    this.socket = createSocket(isIP(config.host) === 6 ? 'udp6' : 'udp4');
    this.socket.on('error', (err) => this.warn(err));
    this.socket.unref();
  }

  write(line: string, severity: number, time: number): void {
    if (this.closed || this.inflight >= MAX_INFLIGHT_DATAGRAMS) {
      this.dropped++;
      return;
    }
    let data = Buffer.from(this.message(line, severity, time));
    if (data.length > MAX_DATAGRAM) data = data.subarray(0, MAX_DATAGRAM);
    this.inflight++;
    this.socket.send(data, this.config.port, this.target, (err) => {
      this.inflight--;
      if (err) {
        this.dropped++;
        this.warn(err);
      } else this.written++;
    });
  }

  async close(deadline: number): Promise<void> {
    this.closed = true;
    await waitUntil(() => this.inflight === 0, deadline);
    this.socket.close();
  }

  private warn(err: Error): void {
    if (Date.now() - this.lastError < 10_000) return;
    this.lastError = Date.now();
    this.log.warn({ err, address: `${this.config.host}:${this.config.port}` }, 'audit syslog (udp): send failed');
  }
}

export class TcpSyslogSink extends SyslogSink {
  private socket: Socket | null = null;
  private connected = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Lines in `pending`, so that lines lost with a dead connection can be counted. */
  private pendingLines = 0;
  private backoff = RECONNECT_MIN_MS;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private failures = 0;

  constructor(config: AuditSyslogConfig, log: Logger) {
    super(config, log);
    this.connect();
  }

  write(line: string, severity: number, time: number): void {
    const msg = Buffer.from(this.message(line, severity, time));
    const frame = Buffer.concat([Buffer.from(`${msg.length} `), msg]);
    const backlog = this.pendingBytes + (this.socket?.writableLength ?? 0);
    if (this.closed || backlog + frame.length > MAX_PENDING_BYTES) {
      this.dropped++;
      return;
    }
    if (this.connected && this.pending.length === 0) {
      this.socket!.write(frame);
      this.written++;
      return;
    }
    this.pending.push(frame);
    this.pendingBytes += frame.length;
    this.pendingLines++;
  }

  async close(deadline: number): Promise<void> {
    this.closed = true;
    if (!this.connected && this.timer && this.pending.length > 0) {
      // One last try now rather than after the backoff.
      clearTimeout(this.timer);
      this.timer = null;
      this.connect();
    }
    const drained = await waitUntil(() => this.pending.length === 0 && (this.socket?.writableLength ?? 0) === 0, deadline);
    if (this.timer) clearTimeout(this.timer);
    if (!drained) {
      this.dropped += this.pendingLines;
      this.log.error(
        { lines: this.pendingLines, socket_bytes: this.socket?.writableLength ?? 0, address: this.address },
        'audit syslog (tcp): shutdown deadline reached; unsent lines dropped',
      );
    }
    const socket = this.socket;
    this.socket = null;
    if (!socket) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end();
      setTimeout(() => socket.destroy(), Math.max(0, deadline - Date.now())).unref();
    });
  }

  private get address(): string {
    return `${this.config.host}:${this.config.port}`;
  }

  private connect(): void {
    const socket = connect({ host: this.config.host, port: this.config.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.unref();
    socket.on('connect', () => {
      this.connected = true;
      this.backoff = RECONNECT_MIN_MS;
      if (this.failures > 0) this.log.info({ address: this.address }, 'audit syslog (tcp): connected');
      this.failures = 0;
      const frames = this.pending;
      this.written += this.pendingLines;
      this.pending = [];
      this.pendingBytes = 0;
      this.pendingLines = 0;
      if (frames.length > 0) socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames));
    });
    socket.on('error', (err) => {
      if (this.failures++ === 0) this.log.warn({ err, address: this.address }, 'audit syslog (tcp): connection failed; reconnecting');
    });
    socket.on('close', () => {
      this.connected = false;
      if (this.socket === socket) this.socket = null;
      if (this.closed) return;
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.closed) this.connect();
      }, this.backoff);
      this.timer.unref();
      this.backoff = Math.min(RECONNECT_MAX_MS, this.backoff * 2);
    });
  }
}

export function createSyslogSink(config: AuditSyslogConfig, log: Logger): AuditSink {
  return config.protocol === 'tcp' ? new TcpSyslogSink(config, log) : new UdpSyslogSink(config, log);
}
