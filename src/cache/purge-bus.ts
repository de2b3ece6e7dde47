// Cross-instance purge over Redis pub/sub: every Karasu sharing a Redis applies a purge made on any one of
// them. Pub/sub is fire-and-forget — an instance that is disconnected when a purge is published misses it
// (its memory/disk tiers keep the old copy until their TTL); the bus only guarantees best effort.

import { Redis } from 'ioredis';
import type { PurgeFilter } from './types.js';
import { softRedisOptions, type TierLog } from './tiers/redis.js';

export interface PurgeMessage {
  op: 'purge' | 'stale';
  filter: PurgeFilter;
  /** Purge exactly this cache key (`bucket:objectKey`) instead of a filter. */
  key?: string;
}

export interface PurgeBusOptions {
  url: string;
  password?: string | null;
  db: number;
  channel: string;
  /** Unique per process: a receiver drops messages carrying its own id (it already applied them). */
  instanceId: string;
  log?: TierLog;
  /** Publish timeout; default 2000 ms. */
  timeoutMs?: number;
}

/** On the wire: the message plus the sender's instanceId. */
type Envelope = PurgeMessage & { from: string };

const noLog: TierLog = { warn() {}, info() {} };

/** Validates an incoming message: the channel is writable by anything that can reach Redis. */
function parseEnvelope(text: string): { from: string; message: PurgeMessage } | null {
  try {
    const m = JSON.parse(text) as Partial<Envelope> | null;
    if (!m || typeof m !== 'object' || typeof m.from !== 'string') return null;
    if (m.op !== 'purge' && m.op !== 'stale') return null;
    const f = m.filter as PurgeFilter | undefined;
    if (!f || typeof f !== 'object') return null;
    if (f.bucket !== undefined && typeof f.bucket !== 'string') return null;
    if (f.prefix !== undefined && typeof f.prefix !== 'string') return null;
    if (m.key !== undefined && typeof m.key !== 'string') return null;
    const filter: PurgeFilter = {};
    if (f.bucket !== undefined) filter.bucket = f.bucket;
    if (f.prefix !== undefined) filter.prefix = f.prefix;
    const message: PurgeMessage = { op: m.op, filter };
    if (m.key !== undefined) message.key = m.key;
    return { from: m.from, message };
  } catch {
    return null;
  }
}

export class PurgeBus {
  readonly counters = { published: 0, received: 0, errors: 0 };
  private readonly pub: Redis;
  /** A subscribed connection cannot publish, hence two. */
  private readonly sub: Redis;
  private readonly handlers: ((m: PurgeMessage) => void)[] = [];
  private readonly log: TierLog;
  private subscribed = false;
  private closing = false;

  static create(opts: PurgeBusOptions): PurgeBus {
    return new PurgeBus(opts);
  }

  private constructor(private readonly opts: PurgeBusOptions) {
    this.log = opts.log ?? noLog;
    const base = softRedisOptions({ password: opts.password, db: opts.db, timeoutMs: opts.timeoutMs ?? 2000 });
    this.pub = new Redis(opts.url, { ...base, connectionName: 'karasu-purge-pub' });
    // We subscribe on every 'ready' ourselves (rather than autoResubscribe) so the first subscription
    // needs no offline queue and a failed SUBSCRIBE is retried by forcing a reconnect.
    this.sub = new Redis(opts.url, { ...base, connectionName: 'karasu-purge-sub', autoResubscribe: false });
    this.pub.on('error', () => {});
    this.sub.on('error', () => {});
    this.sub.on('ready', () => this.subscribe());
    this.sub.on('close', () => {
      if (!this.subscribed || this.closing) return;
      this.subscribed = false;
      this.log.warn({ channel: opts.channel }, 'purge bus unsubscribed (redis connection lost); reconnecting');
    });
    this.sub.on('message', (channel: string, text: string) => {
      if (channel === opts.channel) this.receive(text);
    });
  }

  /** Connected for publishing and subscribed. */
  get available(): boolean {
    return this.subscribed && this.pub.status === 'ready';
  }

  onMessage(handler: (m: PurgeMessage) => void): void {
    this.handlers.push(handler);
  }

  /** Never throws: while Redis is down the message is dropped, logged and counted. */
  async publish(message: PurgeMessage): Promise<void> {
    const envelope: Envelope = { ...message, from: this.opts.instanceId };
    try {
      if (this.pub.status !== 'ready') throw new Error(`redis connection ${this.pub.status}`);
      await this.pub.publish(this.opts.channel, JSON.stringify(envelope));
      this.counters.published++;
    } catch (err) {
      this.counters.errors++;
      this.log.warn({ channel: this.opts.channel, op: message.op, err: (err as Error).message }, 'purge not published to other instances');
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      [this.pub, this.sub].map(async (c) => {
        try {
          if (c.status === 'ready') await c.quit();
        } catch {
          // closing anyway
        } finally {
          c.disconnect();
        }
      }),
    );
  }

  private subscribe(): void {
    this.sub.subscribe(this.opts.channel).then(
      () => {
        this.subscribed = true;
        this.log.info({ channel: this.opts.channel }, 'purge bus subscribed');
      },
      (err: Error) => {
        this.counters.errors++;
        this.log.warn({ channel: this.opts.channel, err: err.message }, 'purge bus subscribe failed; reconnecting');
        if (!this.closing) this.sub.disconnect(true);
      },
    );
  }

  private receive(text: string): void {
    const m = parseEnvelope(text);
    if (!m) {
      this.counters.errors++;
      return;
    }
    if (m.from === this.opts.instanceId) return;
    this.counters.received++;
    for (const h of this.handlers) {
      try {
        h(m.message);
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'purge bus handler failed');
      }
    }
  }
}
