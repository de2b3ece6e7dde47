/* global __ENV */
// Reload under load: steady traffic while the configuration is reloaded every few seconds.
// No request may fail, latency stays flat, and the cache survives (hits keep coming).
//   k6 run k6/reload.js                    (reloads with POST /admin/reload)
//   k6 run -e RELOAD=external k6/reload.js (no admin calls; send SIGHUP yourself, e.g.
//                                           while sleep 5; do kill -HUP <karasu pid>; done)
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { BASE, SMALL, adminParams, pick, url, xcache } from './lib.js';

const DURATION = __ENV.DURATION || '60s';
const hits = new Rate('cache_hits');
const reloaded = new Rate('reload_ok');
const external = __ENV.RELOAD === 'external';

const scenarios = {
  traffic: {
    executor: 'constant-arrival-rate',
    rate: Number(__ENV.RATE || 500),
    timeUnit: '1s',
    duration: DURATION,
    preAllocatedVUs: 50,
    maxVUs: 200,
    exec: 'traffic',
  },
};
if (!external) {
  scenarios.reloader = {
    executor: 'constant-arrival-rate',
    rate: 1,
    timeUnit: __ENV.RELOAD_EVERY || '5s',
    duration: DURATION,
    startTime: '5s',
    preAllocatedVUs: 1,
    exec: 'reload',
  };
}

export const options = {
  scenarios,
  thresholds: {
    'http_req_failed{scenario:traffic}': ['rate==0'],
    'http_req_duration{scenario:traffic}': ['p(95)<50', 'p(99)<200'],
    // Cache contents survive reloads.
    cache_hits: ['rate>0.95'],
    ...(external ? {} : { reload_ok: ['rate==1'] }),
  },
};

export function setup() {
  for (const key of SMALL) http.get(url(key), { tags: { name: 'warm-up' } });
}

export function traffic() {
  const res = http.get(url(pick(SMALL)), { tags: { name: 'small' } });
  hits.add(xcache(res).startsWith('HIT'));
  check(res, { 'status 200': (r) => r.status === 200 });
}

export function reload() {
  const res = http.post(`${BASE}/admin/reload`, null, adminParams({ name: 'admin reload' }));
  reloaded.add(res.status === 200);
  if (res.status !== 200) console.warn(`POST /admin/reload answered ${res.status}: ${res.body}`);
}
