import type { Karasu } from './app.js';
import { authReadiness } from '../auth/runtime.js';
import { VERSION } from '../version.js';

export function registerHealthRoutes(karasu: Karasu): void {
  const { app } = karasu;

  app.get('/health', (request, reply) => {
    void reply.header('x-request-id', request.id).header('cache-control', 'no-store').send({
      status: 'healthy',
      version: VERSION,
      uptime_seconds: Math.floor((Date.now() - karasu.startedAt) / 1000),
    });
  });

  app.get('/ready', (request, reply) => {
    const snapshot = karasu.current();
    const backends: Record<string, { status: string; replicas: Record<string, string>; auth?: string }> = {};
    let anyDown = false;
    // A bucket whose only keys come from a JWKS that never loaded cannot let anyone in: unavailable.
    const auth = authReadiness(snapshot.auth);
    for (const [name, bucket] of snapshot.buckets) {
      const replicas: Record<string, string> = {};
      let open = 0;
      for (const replica of bucket.upstream.replicas) {
        replicas[replica.name] = replica.breaker.state === 'open' ? 'unhealthy' : 'healthy';
        if (replica.breaker.state === 'open') open++;
      }
      const status = open === 0 ? 'ready' : open < bucket.upstream.replicas.length ? 'degraded' : 'unavailable';
      if (status === 'unavailable') anyDown = true;
      backends[name] = { status, replicas };
      if (bucket.auth) {
        const keysMissing = auth.unavailableBuckets.has(name);
        backends[name] = { status: keysMissing ? 'unavailable' : status, replicas, auth: keysMissing ? 'keys_unavailable' : 'ready' };
        if (keysMissing) anyDown = true;
      }
    }
    const status = karasu.draining ? 'draining' : anyDown ? 'unavailable' : 'ready';
    // A cache tier that is down (Redis) degrades hit ratios, not correctness: shown, but still ready.
    const cache = karasu.cache
      ? Object.fromEntries(karasu.cache.cache.tiers.map((tier) => [tier.name, tier.available ? 'available' : 'unavailable']))
      : null;
    void reply
      .code(status === 'ready' ? 200 : 503)
      .header('x-request-id', request.id)
      .header('cache-control', 'no-store')
      .send({ status, config_generation: snapshot.generation, backends, cache, jwks: auth.jwks });
  });

  app.get('/metrics', async (request, reply) => {
    const { metrics } = karasu.current().config;
    if (!metrics.enabled || metrics.port !== null) {
      return reply.callNotFound();
    }
    return reply
      .header('x-request-id', request.id)
      .header('content-type', karasu.metrics.registry.contentType)
      .send(await karasu.metrics.registry.metrics());
  });
}
