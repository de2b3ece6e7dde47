import client from 'prom-client';
import type { BreakerState } from '../upstream/breaker.js';
import type { UpstreamEvents } from '../upstream/replica-set.js';

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 };

/** One registry per process (not per snapshot): counters survive reloads. */
export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'karasu_' });
  const requests = new TallyCounter(registry, 'karasu_http_requests_total', 'Requests answered, by bucket, method and status', [
    'bucket',
    'method',
    'status',
  ]);
  const duration = new TallyHistogram(
    registry,
    'karasu_http_request_duration_seconds',
    'Time from request to the last byte of the response',
    'bucket',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  const bytesSent = new TallyCounter(registry, 'karasu_http_response_bytes_total', 'Body bytes sent to clients', ['bucket']);
  const rejected = new client.Counter({
    name: 'karasu_rejected_requests_total',
    help: 'Requests refused before routing, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const inflight = new TallyGauge(registry, 'karasu_inflight_requests', 'Requests in flight');
  const upstreamAttempts = new client.Counter({
    name: 'karasu_upstream_attempts_total',
    help: 'Requests sent to S3, by bucket, replica and outcome (ok, error, timeout, http_5xx)',
    labelNames: ['bucket', 'replica', 'outcome'] as const,
    registers: [registry],
  });
  const failovers = new client.Counter({
    name: 'karasu_upstream_failovers_total',
    help: 'Times a request moved from one replica to the next',
    labelNames: ['bucket', 'from', 'to'] as const,
    registers: [registry],
  });
  const breakerState = new client.Gauge({
    name: 'karasu_circuit_breaker_state',
    help: 'Circuit breaker per replica: 0 closed, 1 open, 2 half-open',
    labelNames: ['bucket', 'replica'] as const,
    registers: [registry],
  });
  const reloads = new client.Counter({
    name: 'karasu_config_reloads_total',
    help: 'Configuration reloads, by result (success, failure)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  const generation = new client.Gauge({ name: 'karasu_config_generation', help: 'Generation of the running configuration', registers: [registry] });
  const authResults = new TallyCounter(
    registry,
    'karasu_auth_total',
    'JWT authentication of requests to protected buckets, by bucket and result (success, missing, invalid, expired, forbidden, unavailable)',
    ['bucket', 'result'],
  );
  const jwksRefreshes = new client.Counter({
    name: 'karasu_jwks_refresh_total',
    help: 'JWKS fetches, by result (success, failure)',
    labelNames: ['result'] as const,
    registers: [registry],
  });

  return {
    registry,
    requests,
    duration,
    bytesSent,
    rejected,
    inflight,
    upstreamAttempts,
    failovers,
    breakerState,
    reloads,
    generation,
    authResults,
    jwksRefreshes,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

interface CounterTally {
  labels: Record<string, string | number>;
  value: number;
}

/**
 * A counter for the per-request path, copied into prom-client when Prometheus scrapes (prom-client's
 * own inc() validates and hashes its label object on every call). Tallies sit in one Map level per
 * label, keyed by the label values themselves: no key string is built per call.
 */
export class TallyCounter {
  private readonly root = new Map<string | number, unknown>();
  private readonly tallies: CounterTally[] = [];

  constructor(registry: client.Registry, name: string, help: string, private readonly labelNames: readonly string[]) {
    mirroredCounter(registry, name, help, [...labelNames], () => this.tallies.map((t) => [t.labels, t.value] as const));
  }

  inc(labels: Record<string, string | number>, by = 1): void {
    const names = this.labelNames;
    let level = this.root;
    for (let i = 0; i < names.length - 1; i++) {
      const value = labels[names[i]];
      let next = level.get(value) as Map<string | number, unknown> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    const last = labels[names[names.length - 1]];
    const tally = level.get(last) as CounterTally | undefined;
    if (tally !== undefined) {
      tally.value += by;
      return;
    }
    const created = { labels: { ...labels }, value: by };
    level.set(last, created);
    this.tallies.push(created);
  }
}

interface HistogramTally {
  /** Observations per bucket, not cumulative; the last slot is above the highest bound. */
  counts: Float64Array;
  sum: number;
  count: number;
}

/**
 * A histogram with one label for the per-request path: an observation is a map lookup and a few
 * additions. prom-client's Histogram.observe validates and hashes its label object and allocates per
 * call; this registers itself with the registry and answers its get() in prom-client's own format, so
 * the exposition is the same.
 */
export class TallyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly tallies = new Map<string, HistogramTally>();

  constructor(
    registry: client.Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelName: string,
    private readonly bounds: readonly number[],
  ) {
    registry.registerMetric(this as unknown as client.Metric);
  }

  observe(labelValue: string, value: number): void {
    let tally = this.tallies.get(labelValue);
    if (tally === undefined) {
      tally = { counts: new Float64Array(this.bounds.length + 1), sum: 0, count: 0 };
      this.tallies.set(labelValue, tally);
    }
    let slot = 0;
    while (slot < this.bounds.length && value > this.bounds[slot]) slot++;
    tally.counts[slot]++;
    tally.sum += value;
    tally.count++;
  }

  /** What the registry reads at scrape time (prom-client's metric `get()` shape). */
  get(): { name: string; help: string; type: 'histogram'; values: Array<client.MetricValueWithName<string>>; aggregator: client.Aggregator } {
    const values: Array<client.MetricValueWithName<string>> = [];
    for (const [labelValue, tally] of this.tallies) {
      const labels = { [this.labelName]: labelValue };
      const bucketName = `${this.name}_bucket`;
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += tally.counts[i];
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: bucketName });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: tally.count, metricName: bucketName });
      values.push({ labels, value: tally.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: tally.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: 'sum' };
  }

  reset(): void {
    this.tallies.clear();
  }
}

/** A gauge moved on the per-request path, read by Prometheus at scrape time. */
export class TallyGauge {
  private value = 0;

  constructor(registry: client.Registry, name: string, help: string) {
    const read = (): number => this.value;
    new client.Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  }

  inc(): void {
    this.value++;
  }

  dec(): void {
    this.value--;
  }
}

interface CacheStatsSource {
  stats(): {
    tiers: Record<string, { entries: number; bytes: number; maxBytes: number; evictions: number; corrupt: number; errors: number; hits: number; misses: number; bytes_served: number; available: boolean }>;
    buckets: Record<string, { hits: number; misses: number; stale: number; revalidated: number; bypass: number; bytes_from_cache: number; bytes_from_s3: number }>;
  };
}

/**
 * Cache figures are read from the tiers' own counters when Prometheus scrapes, so the hot path pays
 * nothing for them.
 */
export function registerCacheMetrics(metrics: Metrics, cache: CacheStatsSource): void {
  const { registry } = metrics;
  type Tier = ReturnType<CacheStatsSource['stats']>['tiers'][string];
  type Bucket = ReturnType<CacheStatsSource['stats']>['buckets'][string];
  const perTier = (pick: (t: Tier) => number) => () =>
    Object.entries(cache.stats().tiers).map(([tier, stats]) => [{ tier }, pick(stats)] as const);

  tierGauge(registry, 'karasu_cache_entries', 'Entries held, by tier', perTier((t) => t.entries));
  tierGauge(registry, 'karasu_cache_bytes', 'Body bytes held, by tier', perTier((t) => t.bytes));
  tierGauge(registry, 'karasu_cache_max_bytes', 'Configured byte budget, by tier (0: bounded elsewhere)', perTier((t) => t.maxBytes));
  tierGauge(registry, 'karasu_cache_tier_available', 'Whether the tier is usable now (Redis connected)', perTier((t) => (t.available ? 1 : 0)));
  mirroredCounter(registry, 'karasu_cache_evictions_total', 'Entries evicted to stay within the budget, by tier', ['tier'], perTier((t) => t.evictions));
  mirroredCounter(registry, 'karasu_cache_corrupt_total', 'Entries found corrupt on read and dropped, by tier', ['tier'], perTier((t) => t.corrupt));
  mirroredCounter(registry, 'karasu_cache_errors_total', 'Tier operations that failed or timed out, by tier', ['tier'], perTier((t) => t.errors));
  mirroredCounter(registry, 'karasu_cache_tier_hits_total', 'Lookups answered by this tier', ['tier'], perTier((t) => t.hits));
  mirroredCounter(registry, 'karasu_cache_tier_misses_total', 'Lookups this tier could not answer', ['tier'], perTier((t) => t.misses));

  const results: Array<[string, keyof Bucket]> = [['hit', 'hits'], ['miss', 'misses'], ['stale', 'stale'], ['revalidated', 'revalidated'], ['bypass', 'bypass']];
  mirroredCounter(registry, 'karasu_cache_requests_total', 'Cached-bucket requests by bucket and result (hit, miss, stale, revalidated, bypass)', ['bucket', 'result'], () =>
    Object.entries(cache.stats().buckets).flatMap(([bucket, s]) => results.map(([result, field]) => [{ bucket, result }, s[field]] as const)),
  );
  mirroredCounter(registry, 'karasu_cache_bytes_total', 'Body bytes by bucket and source: served from cache, or fetched from S3', ['bucket', 'source'], () =>
    Object.entries(cache.stats().buckets).flatMap(([bucket, s]) => [
      [{ bucket, source: 'cache' }, s.bytes_from_cache] as const,
      [{ bucket, source: 's3' }, s.bytes_from_s3] as const,
    ]),
  );
}

type Samples = () => ReadonlyArray<readonly [Record<string, string | number>, number]>;

function tierGauge(registry: client.Registry, name: string, help: string, samples: Samples): void {
  new client.Gauge({
    name,
    help,
    labelNames: ['tier'],
    registers: [registry],
    collect() {
      for (const [labels, value] of samples()) this.set(labels, value);
    },
  });
}

/** A counter whose values live elsewhere (the tiers' own counters), copied in at scrape time. */
function mirroredCounter(registry: client.Registry, name: string, help: string, labelNames: string[], samples: Samples): void {
  new client.Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of samples()) this.inc(labels, value);
    },
  });
}

export function upstreamEvents(metrics: Metrics, log: (msg: string, fields: object) => void): UpstreamEvents {
  return {
    breakerChanged(bucket, replica, from, to) {
      metrics.breakerState.set({ bucket, replica }, BREAKER_VALUE[to]);
      log(`circuit breaker ${from} → ${to}`, { bucket, replica, from, to });
    },
    attempt(bucket, replica, outcome) {
      metrics.upstreamAttempts.inc({ bucket, replica, outcome });
    },
    failover(bucket, from, to) {
      metrics.failovers.inc({ bucket, from, to });
      log('replica failover', { bucket, from, to });
    },
  };
}
