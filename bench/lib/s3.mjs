// The origin: s3rver 3.7.1 as a child process, and the benchmark objects seeded into it.
// s3rver answers anonymous (unsigned) PUT and GET, so seeding and the nginx peer need no SigV4.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { freePort, startChild, waitForPort } from './procs.mjs';

const require = createRequire(import.meta.url);
const { SignatureV4 } = require('@smithy/signature-v4');

export const BUCKET = 'bench';

/** `buckets`: the buckets s3rver creates at start (default: `bench`). */
export async function startS3rver(scratch, { cpu, buckets = [BUCKET] } = {}) {
  const dir = path.join(scratch, 's3');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const bin = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const logFile = path.join(scratch, 'logs', 's3rver.log');
  const args = [bin, '-d', dir, '-a', '127.0.0.1', '-p', String(port), '-s', '--no-vhost-buckets', ...buckets.flatMap((b) => ['--configure-bucket', b])];
  const child = startChild('s3rver', process.execPath, args, { logFile, cpu });
  await waitForPort(port, child, { logFile });
  return { child, port, endpoint: `http://127.0.0.1:${port}` };
}

/** PUTs `size` random bytes as `key`, streamed 1 MiB at a time; resolves the body's md5. */
export function putRandomObject(endpoint, key, size, timeoutMs = 120_000) {
  return new Promise((resolve, reject) => {
    const md5 = createHash('md5');
    const req = http.request(`${endpoint}/${BUCKET}/${key}`, {
      method: 'PUT',
      headers: { 'content-length': size, 'content-type': 'application/octet-stream' },
      timeout: timeoutMs,
    });
    req.on('timeout', () => req.destroy(new Error(`PUT ${key} timed out`)));
    req.on('error', reject);
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(md5.digest('hex')) : reject(new Error(`PUT ${key}: HTTP ${res.statusCode}`))));
    });
    let left = size;
    const writeMore = () => {
      while (left > 0) {
        const chunk = randomBytes(Math.min(left, 1 << 20));
        left -= chunk.length;
        md5.update(chunk);
        if (!req.write(chunk)) return void req.once('drain', writeMore);
      }
      req.end();
    };
    writeMore();
  });
}

/** GETs `url` completely; resolves { status, headers, md5, bytes }. */
export function fetchDigest(url, { headers = {}, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: timeoutMs, agent: false }, (res) => {
      const md5 = createHash('md5');
      let bytes = 0;
      res.on('data', (d) => { md5.update(d); bytes += d.length; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, md5: md5.digest('hex'), bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

/** node:crypto in the shape the SDK signer expects. */
class Sha256 {
  constructor(secret) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', typeof secret === 'string' ? secret : Buffer.from(secret));
  }
  update(data) {
    this.hash.update(typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  }
  async digest() {
    return this.hash.digest();
  }
}

/**
 * A presigned GET URL for `path` (`/bucket/key`), valid `expiresIn` seconds: a signed request that wrk can
 * repeat. s3rver then verifies a SigV4 signature for every GET, as it does for Karasu's (header-signed) ones.
 */
export async function presignedUrl(endpoint, path, expiresIn = 24 * 3600) {
  const url = new URL(endpoint);
  const signer = new SignatureV4({ service: 's3', region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, sha256: Sha256, uriEscapePath: false });
  const signed = await signer.presign(
    { method: 'GET', protocol: url.protocol, hostname: url.hostname, port: Number(url.port), path, query: {}, headers: { host: url.host } },
    { expiresIn },
  );
  const query = Object.entries(signed.query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return `${endpoint}${path}?${query}`;
}
