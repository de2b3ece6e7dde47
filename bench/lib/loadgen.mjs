// Fallback load generator when wrk is not installed: N keep-alive connections, each a loop of GETs,
// for D seconds. Prints one WRKJSON line shaped like wrk-json.lua's.
// usage: node loadgen.mjs URL CONNECTIONS SECONDS ['Name: value' …]   (headers sent on every request)
import http from 'node:http';

const [url, connArg, secArg, ...headerArgs] = process.argv.slice(2);
const headers = Object.fromEntries(headerArgs.map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
const connections = Number(connArg);
const durationMs = Number(secArg) * 1000;
const REQUEST_TIMEOUT_MS = 5000;
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
const latenciesUs = [];
const errors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
let bytes = 0;

// Hard stop: never outlive the run by more than the request timeout.
setTimeout(() => process.exit(2), durationMs + REQUEST_TIMEOUT_MS + 2000).unref();

function once() {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    let timedOut = false;
    const req = http.get(url, { agent, headers, timeout: REQUEST_TIMEOUT_MS }, (res) => {
      res.on('data', (d) => (bytes += d.length));
      res.on('end', () => {
        if (res.statusCode >= 400) errors.status++;
        latenciesUs.push(Number(process.hrtime.bigint() - t0) / 1000);
        resolve();
      });
      res.on('error', () => errors.read++);
      res.on('close', resolve); // after 'end', or when the connection broke mid-body
    });
    req.on('timeout', () => {
      timedOut = true;
      errors.timeout++;
      req.destroy();
    });
    req.on('error', (err) => {
      if (!timedOut) errors[err.code === 'ECONNREFUSED' ? 'connect' : 'read']++;
      resolve();
    });
  });
}

async function loop(deadline) {
  while (Date.now() < deadline) await once();
}

const pct = (sorted, p) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]) : 0);

const start = Date.now();
const deadline = start + durationMs;
await Promise.all(Array.from({ length: connections }, () => loop(deadline)));
const elapsedUs = (Date.now() - start) * 1000;
agent.destroy();
const sorted = Float64Array.from(latenciesUs).sort();
const out = {
  requests: latenciesUs.length,
  duration_us: elapsedUs,
  bytes,
  err_connect: errors.connect,
  err_read: errors.read,
  err_write: errors.write,
  err_status: errors.status,
  err_timeout: errors.timeout,
  p50_us: pct(sorted, 50),
  p99_us: pct(sorted, 99),
  max_us: Math.round(sorted[sorted.length - 1] ?? 0),
};
process.stdout.write(`WRKJSON ${JSON.stringify(out)}\n`);
