import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { CircuitBreaker } from '../../src/upstream/breaker.js';
import { freshnessMs, isStorable, parseCacheControl, type CachePolicy } from '../../src/cache/policy.js';
import { createAdmission, FrequencySketch, worthAdmitting } from '../../src/cache/admission.js';
import { Spool } from '../../src/cache/spool.js';
import { MemoryTier } from '../../src/cache/tiers/memory.js';
import type { CacheMeta } from '../../src/cache/types.js';

describe('circuit breaker', () => {
  const settings = { failure_threshold: 3, success_threshold: 2, timeout_seconds: 10, half_open_max_requests: 1 };

  it('opens after consecutive failures, half-opens after the timeout, closes after successes', () => {
    let now = 0;
    const changes: string[] = [];
    const breaker = new CircuitBreaker(settings, (from, to) => changes.push(`${from}>${to}`), () => now);
    breaker.recordFailure();
    breaker.recordFailure();
    breaker.recordSuccess(); // resets the count
    breaker.recordFailure();
    breaker.recordFailure();
    assert.equal(breaker.state, 'closed');
    breaker.recordFailure();
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.tryAcquire(), false);
    assert.equal(breaker.retryAfterSeconds(), 10);
    now = 10_000;
    assert.equal(breaker.tryAcquire(), true);
    assert.equal(breaker.state, 'half-open');
    assert.equal(breaker.tryAcquire(), false, 'only half_open_max_requests trials at once');
    breaker.recordSuccess();
    assert.equal(breaker.tryAcquire(), true);
    breaker.recordSuccess();
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(changes, ['closed>open', 'open>half-open', 'half-open>closed']);
  });

  it('a failed trial opens it again', () => {
    let now = 0;
    const breaker = new CircuitBreaker({ ...settings, failure_threshold: 1 }, undefined, () => now);
    breaker.recordFailure();
    now = 10_000;
    assert.equal(breaker.tryAcquire(), true);
    breaker.recordFailure();
    assert.equal(breaker.state, 'open');
    assert.equal(breaker.tryAcquire(), false);
  });
});

describe('cache policy', () => {
  const policy: CachePolicy = { defaultTtlMs: 60_000, maxItemSize: Infinity, staleWhileRevalidateMs: 0, staleIfErrorMs: 0 };

  it('parses the directives a shared cache needs', () => {
    assert.deepEqual(parseCacheControl('public, max-age=60, s-maxage=30'), { noStore: false, private: false, noCache: false, maxAge: 30 });
    assert.deepEqual(parseCacheControl('max-age="120"'), { noStore: false, private: false, noCache: false, maxAge: 120 });
    assert.equal(parseCacheControl('No-Store').noStore, true);
    assert.equal(parseCacheControl('private, max-age=5').private, true);
    assert.equal(parseCacheControl('max-age=abc').maxAge, null);
    assert.equal(isStorable(parseCacheControl('no-store')), false);
    assert.equal(isStorable(parseCacheControl('private')), false);
    assert.equal(isStorable(parseCacheControl('no-cache')), true);
  });

  it('freshness: s-maxage/max-age, then Expires, then the configured TTL; no-cache is 0', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(freshnessMs(parseCacheControl('max-age=10'), {}, policy, now), 10_000);
    assert.equal(freshnessMs(parseCacheControl(undefined), { expires: 'Wed, 21 Oct 2015 07:29:00 GMT' }, policy, now), 60_000);
    assert.equal(freshnessMs(parseCacheControl(undefined), { expires: 'Wed, 21 Oct 2015 07:00:00 GMT' }, policy, now), 0);
    assert.equal(freshnessMs(parseCacheControl(undefined), { expires: '0' }, policy, now), 0, 'an invalid Expires means "already expired" (RFC 9111 §5.3)');
    assert.equal(freshnessMs(parseCacheControl(undefined), { expires: 'garbage' }, policy, now), 0);
    assert.equal(freshnessMs(parseCacheControl(undefined), {}, policy, now), 60_000);
    assert.equal(freshnessMs(parseCacheControl('no-cache, max-age=100'), {}, policy, now), 0);
  });
});

describe('admission', () => {
  it('the sketch counts and ages', () => {
    const sketch = new FrequencySketch(64, 100);
    for (let i = 0; i < 5; i++) sketch.increment('hot');
    assert.equal(sketch.estimate('hot'), 5);
    assert.equal(sketch.estimate('never'), 0);
    for (let i = 0; i < 100; i++) sketch.increment(`k${i}`);
    assert.ok(sketch.estimate('hot') <= 2, 'halved by aging');
  });

  it('admits by requests per byte against the victims', () => {
    assert.equal(worthAdmitting(1, 100, 4, 100), false, 'a one-off does not push out a popular entry');
    assert.equal(worthAdmitting(4, 100, 1, 100), true);
    assert.equal(worthAdmitting(1, 100, 0, 0), true, 'nothing to evict: always admitted');
    assert.equal(worthAdmitting(4, 10_000, 4, 100), false, 'as popular but 100× larger per request');
    const admission = createAdmission(1024);
    for (let i = 0; i < 3; i++) admission.record('k');
    assert.equal(admission.frequency('k'), 3);
  });

  it('evicts the entries earning the fewest requests per byte, not merely the least recent', async () => {
    const tier = new MemoryTier(4 * 1024, 4096, createAdmission(64));
    const meta = (key: string, size: number): CacheMeta => ({
      key, bucket: 'b', objectKey: key, headers: {}, size, etag: null, lastModified: null, storedAt: 0, freshUntil: 0, sha256: '',
    });
    for (let i = 0; i < 5; i++) await tier.get('small-hot');
    await tier.set(meta('small-hot', 512), Buffer.alloc(512)); // least recent from here on
    await tier.get('big-cold');
    await tier.set(meta('big-cold', 2048), Buffer.alloc(2048));
    for (let i = 0; i < 3; i++) await tier.get('newcomer');
    await tier.set(meta('newcomer', 1024), Buffer.alloc(1024));
    assert.ok(tier.stats().bytes <= 4 * 1024);
    assert.ok(await tier.get('newcomer'), 'admitted');
    assert.ok(await tier.get('small-hot'), 'the least recent but most valuable entry stays');
    assert.equal(await tier.get('big-cold'), null, 'the cold large entry made room');
  });

  it('keeps a hot set in a full memory tier against a scan of one-off objects', async () => {
    const tier = new MemoryTier(10 * 1024, 1024, createAdmission(4096));
    const meta = (key: string, size: number): CacheMeta => ({
      key, bucket: 'b', objectKey: key, headers: {}, size, etag: null, lastModified: null, storedAt: 0, freshUntil: 0, sha256: '',
    });
    const hot = Array.from({ length: 8 }, (_, i) => `hot${i}`);
    for (let round = 0; round < 3; round++) {
      for (const key of hot) if (!(await tier.get(key))) await tier.set(meta(key, 512), Buffer.alloc(512));
    }
    for (let i = 0; i < 200; i++) {
      const key = `scan${i}`;
      if (!(await tier.get(key))) await tier.set(meta(key, 512), Buffer.alloc(512));
    }
    let kept = 0;
    for (const key of hot) if (await tier.get(key)) kept++;
    assert.equal(kept, hot.length, 'the scan did not flush the hot set');
    assert.ok(tier.stats().bytes <= 10 * 1024, 'budget held');
  });
});

describe('spool', () => {
  it('readers join at any time, read at their own pace, and see the last byte only after finish()', async () => {
    const spool = new Spool(10);
    const early = spool.reader();
    spool.push(Buffer.from('01234'));
    const late = spool.reader(3, 8);
    spool.push(Buffer.from('56789'));
    const chunks: string[] = [];
    const earlyEnded = new Promise((r) => early.once('end', r));
    early.on('data', (c: Buffer) => chunks.push(c.toString()));
    await new Promise((r) => setImmediate(r));
    assert.equal(chunks.join(''), '012345678', 'the last byte waits for the integrity verdict');
    spool.finish();
    assert.equal(await text(late), '345678');
    await earlyEnded;
    assert.equal(chunks.join(''), '0123456789');
    assert.equal(spool.body().toString(), '0123456789');
  });

  it('a failed fill errors every reader, including ones that had all but the last byte', async () => {
    const spool = new Spool(4);
    const reader = spool.reader();
    spool.push(Buffer.from('abcd'));
    spool.fail(new Error('MD5 mismatch'));
    await assert.rejects(text(reader), /MD5 mismatch/);
  });
});

describe('cache construction', () => {
  it('accepts fractional MB sizes (tiers count whole bytes)', async () => {
    const { createCache } = await import('../../src/cache/build.js');
    const { loadConfigText } = await import('../../src/config/load.js');
    const pino = (await import('pino')).default;
    const { config } = loadConfigText(
      'buckets: [{name: b, path_prefix: /b, s3: {bucket: b}}]\ncache: {enabled: true, memory: {max_cache_size_mb: 41.511131, max_item_size_mb: 0.5}}\n',
      'fractional.yaml',
      {},
    );
    const cache = await createCache(config.cache, pino({ level: 'silent' }));
    assert.equal(cache!.tiers[0].maxItemSize, 512 * 1024);
    assert.equal(cache!.stats().tiers.memory.maxBytes, Math.floor(41.511131 * 1024 * 1024));
    await cache!.close();
  });
});
