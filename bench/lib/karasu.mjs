// Karasu under test: a config written to scratch, `node bin/karasu.js serve -c FILE` as a child process.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUCKET } from './s3.mjs';
import { freePort, runBounded, startChild, waitForPort } from './procs.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const MEMORY_TIER = { max_cache_size_mb: 256, max_item_size_mb: 16, default_ttl_seconds: 3600 };

/**
 * `buckets`: [{ name, prefix, auth, s3Bucket }] (default: one public bucket `bench` at `/bench`), each in front
 * of the s3rver bucket `s3Bucket` (default `bench`); `auth` is the YAML flow mapping of `buckets[].auth`.
 * `memory`: the memory tier's keys (default 256 MB, 16 MB items, 1 h TTL). `extra`: more top-level YAML
 * (`jwt`, `audit_log`).
 */
export function karasuConfig({ port, s3Endpoint, cache, buckets = [{ name: BUCKET, prefix: `/${BUCKET}` }], memory = MEMORY_TIER, extra = '' }) {
  const memoryKeys = Object.entries(memory)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  const cacheBlock = cache
    ? `cache:
  enabled: true
  cache_layers: [memory]
  memory: { ${memoryKeys} }`
    : `cache:
  enabled: false`;
  const bucketBlocks = buckets
    .map(
      (b) => `  - name: ${b.name}
    path_prefix: ${b.prefix}
    s3: { bucket: ${b.s3Bucket ?? BUCKET}, region: us-east-1, endpoint: ${s3Endpoint}, access_key: S3RVER, secret_key: S3RVER }${b.auth ? `\n    auth: ${b.auth}` : ''}`,
    )
    .join('\n');
  return `# written by bench/run.mjs
server: { address: 127.0.0.1, port: ${port} }
buckets:
${bucketBlocks}
${cacheBlock}
logging: { level: warn, format: json }
${extra}`;
}

/** `karasu check -c FILE`: resolves null when the config is valid, else the first lines of what it said. */
export async function checkConfig(configFile) {
  const r = await runBounded(process.execPath, [path.join(ROOT, 'bin', 'karasu.js'), 'check', '-c', configFile], { timeoutMs: 30_000 });
  if (r.code === 0 && !r.timedOut) return null;
  const said = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(0, 4).join(' ');
  return `karasu check failed (${r.timedOut ? 'timed out' : `exit ${r.code}`}): ${said}`;
}

/**
 * Starts Karasu; throws (with its last log lines) when it does not come up. With `check`, the config is first
 * validated by `karasu check` (throws with its output when invalid).
 */
export async function startKarasu(scratch, { s3Endpoint, cache, cpu, tag, buckets, memory, extra, check = false }) {
  const port = await freePort();
  const configFile = path.join(scratch, `karasu-${tag}.yaml`);
  writeFileSync(configFile, karasuConfig({ port, s3Endpoint, cache, buckets, memory, extra }));
  if (check) {
    const why = await checkConfig(configFile);
    if (why) throw new Error(why);
  }
  const logFile = path.join(scratch, 'logs', `karasu-${tag}.log`);
  const child = startChild(`karasu-${tag}`, process.execPath, [path.join(ROOT, 'bin', 'karasu.js'), 'serve', '-c', configFile], {
    logFile,
    cpu,
    cwd: ROOT,
  });
  await waitForPort(port, child, { logFile });
  return { child, port, base: `http://127.0.0.1:${port}`, configFile, logFile, config: { port, s3Endpoint, cache, buckets, memory, extra } };
}

/**
 * Rewrites a running Karasu's config with `extra` in place of the one it started with and reloads it
 * (POST /admin/reload; the admin API answers loopback callers when no admin auth is configured).
 * Resolves null when applied in full, else why not.
 */
export async function reloadKarasu(k, extra) {
  writeFileSync(k.configFile, karasuConfig({ ...k.config, extra }));
  const res = await new Promise((resolve) => {
    const req = http.request(`${k.base}/admin/reload`, { method: 'POST', timeout: 30_000, agent: false }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode, body }));
      r.on('error', (err) => resolve({ status: 0, body: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve({ status: 0, body: err.message }));
    req.end();
  });
  if (res.status !== 200) return `reload answered ${res.status || 'nothing'}: ${res.body.slice(0, 300)}`;
  let needs;
  try {
    needs = JSON.parse(res.body).needs_restart ?? [];
  } catch {
    return `reload answered 200 with a body that is not JSON: ${res.body.slice(0, 300)}`;
  }
  return needs.length ? `reload needs a restart for ${needs.join(', ')}` : null;
}
