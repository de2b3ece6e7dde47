/* global __ENV */
// Large file: full downloads of video.bin (50 MiB in `karasu demo`) and Range requests into it.
// Bodies are discarded by k6, so the client's memory stays flat; watch Karasu's RSS while this runs.
//   k6 run k6/large-file.js
//   k6 run -e DOWNLOAD_VUS=20 -e VIDEO_BYTES=52428800 k6/large-file.js
import http from 'k6/http';
import { check } from 'k6';
import { VIDEO, VIDEO_BYTES, url } from './lib.js';

const MiB = 1024 * 1024;

export const options = {
  discardResponseBodies: true,
  scenarios: {
    downloads: {
      executor: 'constant-vus',
      vus: Number(__ENV.DOWNLOAD_VUS || 5),
      duration: __ENV.DURATION || '30s',
      exec: 'download',
    },
    ranges: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RANGE_RATE || 50),
      timeUnit: '1s',
      duration: __ENV.DURATION || '30s',
      preAllocatedVUs: 20,
      maxVUs: 100,
      exec: 'range',
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.001'],
    // 50 MiB on loopback: well under 5 s even with 5 downloads at once.
    'http_req_duration{scenario:downloads}': ['p(95)<5000'],
    // Time to first byte of a full download stays small: the body streams, it is not buffered first.
    'http_req_waiting{scenario:downloads}': ['p(95)<200'],
    'http_req_duration{scenario:ranges}': ['p(95)<100'],
    checks: ['rate==1'],
  },
};

export function download() {
  const res = http.get(url(VIDEO), { tags: { name: 'full download' } });
  check(res, {
    'full: status 200': (r) => r.status === 200,
    'full: length': (r) => Number(r.headers['Content-Length']) === VIDEO_BYTES,
    'full: Accept-Ranges': (r) => r.headers['Accept-Ranges'] === 'bytes',
  });
}

export function range() {
  const start = Math.floor(Math.random() * (VIDEO_BYTES / MiB - 1)) * MiB;
  const end = start + MiB - 1;
  const res = http.get(url(VIDEO), { headers: { Range: `bytes=${start}-${end}` }, tags: { name: '1 MiB range' } });
  check(res, {
    'range: status 206': (r) => r.status === 206,
    'range: Content-Range': (r) => r.headers['Content-Range'] === `bytes ${start}-${end}/${VIDEO_BYTES}`,
    'range: length': (r) => Number(r.headers['Content-Length']) === MiB,
  });
}
