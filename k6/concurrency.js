/* global __ENV */
// Concurrency: ramp to many simultaneous clients on small objects, with a burst of first requests for one
// object (request coalescing: one S3 GET for all of them). Nothing may fail; 503 (overload) stays rare.
//   k6 run k6/concurrency.js
//   k6 run -e MAX_VUS=2000 k6/concurrency.js     (stay below server.max_concurrent_requests, default 1000,
//                                                  or expect 503s with Retry-After by design)
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { pick, purgeKey, url } from './lib.js';

const RAMP_KEYS = ['hello.txt', 'image.png'];
const BURST_KEY = 'index.html'; // not touched by the ramp, so it is still uncached when the burst starts

const MAX_VUS = Number(__ENV.MAX_VUS || 500);
const overloaded = new Rate('overloaded_503');

export const options = {
  scenarios: {
    ramp: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: '20s', target: MAX_VUS },
        { duration: '40s', target: MAX_VUS },
        { duration: '10s', target: 0 },
      ],
      gracefulRampDown: '5s',
      exec: 'small',
    },
    // 200 clients ask for the same purged object at the same moment.
    burst: {
      executor: 'per-vu-iterations',
      vus: 200,
      iterations: 1,
      startTime: '30s',
      exec: 'burst',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{scenario:ramp}': ['p(95)<100', 'p(99)<500'],
    'http_req_duration{scenario:burst}': ['p(99)<1000'],
    overloaded_503: ['rate<0.001'],
    checks: ['rate>0.999'],
  },
};

export function setup() {
  const res = purgeKey(BURST_KEY);
  if (res.status >= 300) console.warn(`purge before the burst answered ${res.status}; the burst may be served from cache`);
}

export function small() {
  const res = http.get(url(pick(RAMP_KEYS)), { tags: { name: 'small' } });
  overloaded.add(res.status === 503);
  check(res, { 'status 200': (r) => r.status === 200 });
}

export function burst() {
  const res = http.get(url(BURST_KEY), { tags: { name: 'burst' } });
  overloaded.add(res.status === 503);
  check(res, { 'burst: status 200': (r) => r.status === 200 });
}
