/* global __ENV */
// Hot cache: small objects already in the cache, many clients. Every answer should be an X-Cache HIT.
//   k6 run k6/hot.js                      (Karasu with the cache enabled; see k6/README.md)
//   k6 run -e VUS=100 -e DURATION=1m k6/hot.js
import http from 'k6/http';
import { check } from 'k6';
import { Rate } from 'k6/metrics';
import { SMALL, pick, url, xcache } from './lib.js';

const hits = new Rate('cache_hits');

export const options = {
  scenarios: {
    hot: { executor: 'constant-vus', vus: Number(__ENV.VUS || 50), duration: __ENV.DURATION || '30s' },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    'http_req_duration{scenario:hot}': ['p(95)<20', 'p(99)<50'],
    cache_hits: ['rate>0.99'],
    checks: ['rate>0.999'],
  },
};

// Fill the cache first: two GETs of each object (the second should already be a hit).
export function setup() {
  for (const key of SMALL) {
    for (let i = 0; i < 2; i++) {
      const res = http.get(url(key), { tags: { name: 'warm-up' } });
      if (res.status !== 200) throw new Error(`warm-up GET ${url(key)} answered ${res.status}`);
    }
  }
}

export default function () {
  const key = pick(SMALL);
  const res = http.get(url(key), { tags: { name: key } });
  const hit = xcache(res).startsWith('HIT');
  hits.add(hit);
  check(res, {
    'status 200': (r) => r.status === 200,
    'has ETag': (r) => Boolean(r.headers.Etag),
  });
}
