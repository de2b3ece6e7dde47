// The audit log: one JSON line per request, fanned out to the configured outputs. Recording costs one
// facts object and the line written field by field (into the file output's batch directly, as a string
// for the others) on the request's log phase; the outputs queue and write on their own,
// so a slow disk, syslog server or bucket never holds a request (lines beyond their buffers are dropped,
// counted in `karasu_audit_lines_total{result="dropped"}` and logged).
import client from 'prom-client';
import type { IncomingMessage } from 'node:http';
import { resolve } from 'node:path';
import type { AuditConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { FileSink, type FileSinkOptions } from './file.js';
import { recordLine, SEVERITY, severityOf, type RequestFacts } from './record.js';
import type { S3SinkOptions } from './s3.js';
import type { AuditSink } from './sink.js';
import { createSyslogSink } from './syslog.js';

export interface AuditOptions {
  file?: FileSinkOptions;
  s3?: S3SinkOptions;
}

/** What the log phase knows about a request that Karasu answered without proxying it (admin, errors). */
export interface ReplyFacts {
  req: IncomingMessage;
  id: string;
  method: string;
  url: string;
  status: number;
  bytesSent: number;
  durationMs: number;
  user: string | null;
  complete: boolean;
}

const DROP_REPORT_MS = 10_000;

/** What an answered Fastify request (not proxied) tells the audit log. */
export function replyFacts(
  request: { raw: IncomingMessage; id: string; method: string; url: string },
  reply: { statusCode: number; elapsedTime: number; getHeader(name: string): unknown },
  user: string | null,
): ReplyFacts {
  const length = Number(reply.getHeader('content-length'));
  return {
    req: request.raw,
    id: request.id,
    method: request.method,
    url: request.url,
    status: reply.statusCode,
    bytesSent: request.method === 'HEAD' || !Number.isFinite(length) ? 0 : length,
    durationMs: reply.elapsedTime,
    user,
    complete: true,
  };
}

export class AuditLog {
  private readonly minSeverity: number;
  private reported = new Map<AuditSink, number>();
  private readonly reporter: NodeJS.Timeout;
  private closing: Promise<void> | null = null;
  /** File outputs take the record itself (encoded straight into their batch); the others a line. */
  private readonly fileSinks: readonly FileSink[];
  private readonly lineSinks: readonly AuditSink[];
  /** True once close() has flushed every output (its counts are final). */
  closed = false;

  private constructor(
    readonly config: AuditConfig,
    readonly sinks: readonly AuditSink[],
    private readonly log: Logger,
  ) {
    this.minSeverity = SEVERITY[config.log_level];
    this.fileSinks = sinks.filter((s): s is FileSink => s instanceof FileSink);
    this.lineSinks = sinks.filter((s) => !(s instanceof FileSink));
    this.reporter = setInterval(() => this.reportDrops(), DROP_REPORT_MS);
    this.reporter.unref();
  }

  /**
   * Null when the audit log is off. Fails when an output cannot be opened (the file's directory…).
   * `previous`: the log this one replaces on a reload; a file it writes too is started by the new log
   * only once the previous one has closed it.
   */
  static async create(config: AuditConfig, log: Logger, options: AuditOptions = {}, previous: AuditLog | null = null): Promise<AuditLog | null> {
    if (!config.enabled) return null;
    const alog = log.child({ component: 'audit' });
    const sinks: AuditSink[] = [];
    try {
      for (const output of config.outputs) {
        if (output === 'file') {
          const path = resolve(config.file!.path);
          const same = previous?.sinks.find((s): s is FileSink => s instanceof FileSink && resolve(s.path) === path);
          sinks.push(await FileSink.open(config.file!, alog, options.file, same?.finished));
        }
        else if (output === 'syslog') sinks.push(createSyslogSink(config.syslog!, alog));
        else {
          // The AWS SDK is loaded only when this output is configured.
          const { S3ExportSink } = await import('./s3.js');
          sinks.push(new S3ExportSink(config.s3_export!, alog, options.s3));
        }
      }
    } catch (err) {
      await Promise.all(sinks.map((s) => s.close(Date.now())));
      throw err;
    }
    return new AuditLog(config, sinks, alog);
  }

  /** Proxied requests, from the log phase. */
  record(facts: RequestFacts): void {
    const severity = severityOf(facts.status);
    if (severity > this.minSeverity) return;
    const now = Date.now();
    for (const sink of this.fileSinks) sink.writeRecord(facts, now);
    if (this.lineSinks.length === 0) return;
    const line = recordLine(facts, now);
    for (const sink of this.lineSinks) sink.write(line, severity, now);
  }

  /** Requests Karasu answered itself (admin API, refusals before routing). */
  recordReply(f: ReplyFacts, trustedProxies: readonly string[]): void {
    const q = f.url.indexOf('?');
    this.record({
      req: f.req,
      id: f.id,
      method: f.method,
      path: q === -1 ? f.url : f.url.slice(0, q),
      status: f.status,
      bytesSent: f.bytesSent,
      durationMs: f.durationMs,
      user: f.user,
      bucket: null,
      objectKey: null,
      cacheStatus: null,
      cacheTier: null,
      upstreamStatus: null,
      complete: f.complete,
      trustedProxies,
    });
  }

  /** Flushes every output, waiting at most `timeoutMs`. Idempotent. */
  close(timeoutMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      clearInterval(this.reporter);
      const deadline = Date.now() + timeoutMs;
      await Promise.all(this.sinks.map((s) => s.close(deadline).catch((err) => this.log.error({ err, output: s.output }, 'audit output failed to close'))));
      this.reportDrops();
      this.log.info(Object.fromEntries(this.sinks.map((s) => [s.output, { written: s.written, dropped: s.dropped }])), 'audit log flushed');
      this.closed = true;
    })();
    return this.closing;
  }

  private reportDrops(): void {
    for (const sink of this.sinks) {
      const before = this.reported.get(sink) ?? 0;
      if (sink.dropped > before) {
        this.log.warn({ output: sink.output, dropped: sink.dropped - before, dropped_total: sink.dropped }, 'audit lines dropped: the output fell behind or failed');
        this.reported.set(sink, sink.dropped);
      }
    }
  }
}

/**
 * `karasu_audit_lines_total`: one counter for the life of the process, across the audit logs that
 * reloads open and close. `track` adds a log's outputs; a closed log's final counts are taken at the
 * next scrape, then it is forgotten.
 */
export function auditMetrics(registry: client.Registry): { track(audit: AuditLog): void } {
  const tracked = new Set<AuditLog>();
  const seen = new Map<AuditSink, { written: number; dropped: number }>();
  new client.Counter({
    name: 'karasu_audit_lines_total',
    help: 'Audit lines by output and result: written (handed to the destination) or dropped (back-pressure, failures, shutdown deadline)',
    labelNames: ['output', 'result'] as const,
    registers: [registry],
    collect() {
      for (const audit of tracked) {
        const closed = audit.closed;
        for (const sink of audit.sinks) {
          const last = seen.get(sink) ?? { written: 0, dropped: 0 };
          // Always touched, so both series exist from the first scrape.
          this.inc({ output: sink.output, result: 'written' }, Math.max(0, sink.written - last.written));
          this.inc({ output: sink.output, result: 'dropped' }, Math.max(0, sink.dropped - last.dropped));
          if (closed) seen.delete(sink);
          else seen.set(sink, { written: sink.written, dropped: sink.dropped });
        }
        if (closed) tracked.delete(audit);
      }
    },
  });
  return { track: (audit) => void tracked.add(audit) };
}
