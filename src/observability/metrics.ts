import client from 'prom-client';
import type { BreakerState } from '../upstream/breaker.js';
import type { UpstreamEvents } from '../upstream/replica-set.js';

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 };

/** One registry per process (not per snapshot): counters survive reloads. */
export function createMetrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'karasu_' });
  const requests = new client.Counter({
    name: 'karasu_http_requests_total',
    help: 'Requests answered, by bucket, method and status',
    labelNames: ['bucket', 'method', 'status'] as const,
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'karasu_http_request_duration_seconds',
    help: 'Time from request to the last byte of the response',
    labelNames: ['bucket'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const bytesSent = new client.Counter({
    name: 'karasu_http_response_bytes_total',
    help: 'Body bytes sent to clients',
    labelNames: ['bucket'] as const,
    registers: [registry],
  });
  const rejected = new client.Counter({
    name: 'karasu_rejected_requests_total',
    help: 'Requests refused before routing, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const inflight = new client.Gauge({ name: 'karasu_inflight_requests', help: 'Requests in flight', registers: [registry] });
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
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

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
