// The nginx peer: proxy_cache (1 worker, to compare per core) in front of the same s3rver; without `cache`,
// a plain proxy_pass (the all-miss reference: what a proxy written in C adds to a miss).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BUCKET } from './s3.mjs';
import { freePort, startChild, waitForPort } from './procs.mjs';

export function nginxVersion() {
  const r = spawnSync('nginx', ['-v'], { encoding: 'utf8' });
  return (r.stderr || r.stdout || '').trim().replace(/^nginx version:\s*/, '') || null;
}

function nginxConf({ dir, port, s3Port, location, maxSize, cache }) {
  // As root the worker would otherwise run as `nobody`, which cannot enter the private scratch folder.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `# written by bench/run.mjs
${user}worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path ${dir}/client_body;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
    proxy_temp_path ${dir}/proxy_temp;
    proxy_cache_path ${dir}/cache levels=1:2 keys_zone=bench:10m max_size=${maxSize} inactive=60m use_temp_path=off;
    upstream s3 { server 127.0.0.1:${s3Port}; keepalive 32; }
    server {
        listen 127.0.0.1:${port};
        location /${location}/ {
            proxy_pass http://s3;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:${s3Port};
${
  cache
    ? `            proxy_cache bench;
            proxy_cache_valid 200 60m;
            proxy_cache_lock on;
            add_header X-Cache $upstream_cache_status;
`
    : ''
}        }
    }
}
`;
}

/**
 * `s3Port`: the upstream (s3rver, or the zipf scenario's relay); `location`: the route prefix without slashes;
 * `maxSize`: proxy_cache_path max_size; `cache`: false for a plain proxy_pass; `name`: folder in scratch and log file name.
 */
export async function startNginx(scratch, { s3Port, cpu, location = BUCKET, maxSize = '2g', cache = true, name = 'nginx' }) {
  const dir = path.join(scratch, name);
  mkdirSync(path.join(dir, 'cache'), { recursive: true });
  const port = await freePort();
  const confFile = path.join(dir, 'nginx.conf');
  writeFileSync(confFile, nginxConf({ dir, port, s3Port, location, maxSize, cache }));
  const logFile = path.join(scratch, 'logs', `${name}.log`);
  const child = startChild('nginx', 'nginx', ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', confFile], { logFile, cpu });
  await waitForPort(port, child, { logFile: path.join(dir, 'error.log') });
  return { child, port, base: `http://127.0.0.1:${port}`, dir, stopSignal: 'SIGQUIT' };
}
