/* global __ENV */
// Shared settings for the k6 scripts. Every value can be overridden with `k6 run -e NAME=value`.
import http from 'k6/http';

export const BASE = (__ENV.KARASU_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
// Route prefix of the sample objects: /demo for `karasu demo`, /public for docker-compose.yml.
export const PREFIX = (__ENV.PREFIX || '/demo').replace(/\/+$/, '');
// Bucket name in Karasu's config (admin purge paths use it); the demo's is "demo".
export const BUCKET = __ENV.BUCKET || PREFIX.replace(/^\//, '');

// The objects `karasu demo` seeds (docker-compose.yml seeds the same names).
export const SMALL = ['hello.txt', 'index.html', 'image.png'];
export const VIDEO = 'video.bin';
export const VIDEO_BYTES = Number(__ENV.VIDEO_BYTES || 50 * 1024 * 1024);

export const url = (key) => `${BASE}${PREFIX}/${key}`;

/** Admin calls: a static token or JWT when KARASU_ADMIN_TOKEN is set; otherwise Karasu allows loopback only. */
export function adminParams(tags = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (__ENV.KARASU_ADMIN_TOKEN) headers.Authorization = `Bearer ${__ENV.KARASU_ADMIN_TOKEN}`;
  return { headers, tags };
}

export function purgeKey(key) {
  return http.post(`${BASE}/admin/cache/purge/${BUCKET}/${key}`, null, adminParams({ name: 'admin purge' }));
}

/** X-Cache value, upper-cased ('' when absent). k6 canonicalises header names. */
export const xcache = (res) => String(res.headers['X-Cache'] || '').toUpperCase();

export const pick = (list) => list[Math.floor(Math.random() * list.length)];
