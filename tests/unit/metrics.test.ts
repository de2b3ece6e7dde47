// The per-request metric tallies must expose exactly what prom-client's own metrics would.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import client from 'prom-client';
import { TallyCounter, TallyHistogram } from '../../src/observability/metrics.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];
const OBSERVATIONS: Array<[string, number]> = [
  ['media', 0.0004],
  ['media', 0.001],
  ['media', 0.05],
  ['docs', 0.0100001],
  ['media', 7],
  ['docs', 0.3],
  ['media', 0],
];

test('TallyHistogram: the same exposition as a prom-client Histogram fed the same observations', async () => {
  const ours = new client.Registry();
  const theirs = new client.Registry();
  const tally = new TallyHistogram(ours, 'x_seconds', 'help text', 'bucket', BOUNDS);
  const reference = new client.Histogram({ name: 'x_seconds', help: 'help text', labelNames: ['bucket'], buckets: BOUNDS, registers: [theirs] });
  for (const [bucket, value] of OBSERVATIONS) {
    tally.observe(bucket, value);
    reference.observe({ bucket }, value);
  }
  const text = await ours.metrics();
  assert.equal(text, await theirs.metrics());
  assert.match(text, /^x_seconds_bucket\{le="0.01",bucket="media"\} 3$/m);
  assert.match(text, /^x_seconds_count\{bucket="media"\} 5$/m);
  ours.resetMetrics();
  assert.doesNotMatch(await ours.metrics(), /x_seconds_count/);
});

test('TallyCounter: the same exposition as a prom-client Counter', async () => {
  const ours = new client.Registry();
  const theirs = new client.Registry();
  const tally = new TallyCounter(ours, 'y_total', 'help', ['bucket', 'status']);
  const reference = new client.Counter({ name: 'y_total', help: 'help', labelNames: ['bucket', 'status'], registers: [theirs] });
  for (const [bucket, status, by] of [['a', 200, 1], ['a', 200, 2], ['b', 404, 1], ['a', 304, 5]] as const) {
    tally.inc({ bucket, status }, by);
    reference.inc({ bucket, status }, by);
  }
  assert.equal(await ours.metrics(), await theirs.metrics());
});
