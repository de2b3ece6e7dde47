// Karasu under test: a config written to scratch, `node bin/karasu.js serve -c FILE` as a child process.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUCKET } from './s3.mjs';
import { freePort, startChild, waitForPort } from './procs.mjs';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function karasuConfig({ port, s3Endpoint, cache }) {
  const cacheBlock = cache
    ? `cache:
  enabled: true
  cache_layers: [memory]
  memory: { max_cache_size_mb: 256, max_item_size_mb: 16, default_ttl_seconds: 3600 }`
    : `cache:
  enabled: false`;
  return `# written by bench/run.mjs
server: { address: 127.0.0.1, port: ${port} }
buckets:
  - name: ${BUCKET}
    path_prefix: /${BUCKET}
    s3: { bucket: ${BUCKET}, region: us-east-1, endpoint: ${s3Endpoint}, access_key: S3RVER, secret_key: S3RVER }
${cacheBlock}
logging: { level: warn, format: json }
`;
}

/** Starts Karasu; throws (with its last log lines) when it does not come up. */
export async function startKarasu(scratch, { s3Endpoint, cache, cpu, tag }) {
  const port = await freePort();
  const configFile = path.join(scratch, `karasu-${tag}.yaml`);
  writeFileSync(configFile, karasuConfig({ port, s3Endpoint, cache }));
  const logFile = path.join(scratch, 'logs', `karasu-${tag}.log`);
  const child = startChild(`karasu-${tag}`, process.execPath, [path.join(ROOT, 'bin', 'karasu.js'), 'serve', '-c', configFile], {
    logFile,
    cpu,
    cwd: ROOT,
  });
  await waitForPort(port, child, { logFile });
  return { child, port, base: `http://127.0.0.1:${port}`, configFile, logFile };
}
