/* global __ENV, __VU */
// Cold cache: every GET is a miss. Each iteration purges one object through the admin API, then fetches it,
// so this measures the full miss path (auth, S3 request, streaming, cache fill) without coalescing.
//   k6 run k6/cold.js          (needs the admin API: loopback, or -e KARASU_ADMIN_TOKEN=...)
import http from 'k6/http';
import { check } from 'k6';
import { Rate, Trend } from 'k6/metrics';
import { SMALL, purgeKey, url, xcache } from './lib.js';

const misses = new Rate('cache_misses');
const purged = new Rate('purge_ok');
const missTime = new Trend('miss_duration', true);

export const options = {
  scenarios: {
    cold: {
      executor: 'constant-vus',
      // One object per VU, so one VU's purge never turns another VU's GET into a miss it did not expect.
      vus: Number(__ENV.VUS || SMALL.length),
      duration: __ENV.DURATION || '30s',
    },
  },
  thresholds: {
    'http_req_failed{name:cold_get}': ['rate<0.001'],
    miss_duration: ['p(95)<100', 'p(99)<250'],
    cache_misses: ['rate>0.99'],
    purge_ok: ['rate==1'],
  },
};

export default function () {
  const key = SMALL[(__VU - 1) % SMALL.length];
  const purge = purgeKey(key);
  purged.add(purge.status >= 200 && purge.status < 300);
  const res = http.get(url(key), { tags: { name: 'cold_get' } });
  const miss = xcache(res).startsWith('MISS');
  misses.add(miss);
  if (miss) missTime.add(res.timings.duration);
  check(res, { 'status 200': (r) => r.status === 200 });
}
