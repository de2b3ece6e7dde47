// The zipf scenario's pieces: a seeded Zipf(1.0) workload, seeding it into s3rver, a counting relay between a
// proxy and s3rver, a replayer, and offline reference caches over the same trace.
//
// The workload is the shared cost bench's (../shared/tools/cost-bench/gen.js) draw for draw, so a prefix of our
// trace is a prefix of its 200,000-GET trace and the numbers compare: SEED 42, objects obj-00000…obj-09999,
// sizes log-normal (median 16 KiB, σ 1.4) redrawn into [1 KiB, 1 MiB], Zipf(s) popularity over ranks, ranks
// mapped to objects by a seeded permutation, independent draws. Data set 435,275,768 B; cache = 10 % of it.
import http from 'node:http';

export const ZIPF_BUCKET = 'zipf';
export const ZIPF_FULL_TRACE = 200_000;

const WORKLOAD = { seed: 42, objects: 10_000, zipfS: 1.0, sizeMedian: 16 * 1024, sizeSigma: 1.4, sizeMin: 1024, sizeMax: 1024 * 1024 };

export const zipfKey = (i) => `obj-${String(i).padStart(5, '0')}`;

/** mulberry32: the generator behind every draw (sizes, then the permutation, then the trace). */
function mulberry32(seed) {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The first `requests` entries of the trace, the object sizes, and the figures the report needs.
 * `trace[q]` is an object id; `cacheBytes` is 10 % of the whole data set (not of what the prefix touches).
 */
export function makeWorkload(requests) {
  const P = WORKLOAD;
  const rnd = mulberry32(P.seed);
  const sizes = new Float64Array(P.objects);
  const mu = Math.log(P.sizeMedian);
  for (let i = 0; i < P.objects; i++) {
    let s = 0;
    for (let tries = 0; tries < 1000; tries++) {
      const z = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd()); // Box–Muller
      s = Math.round(Math.exp(mu + P.sizeSigma * z));
      if (s >= P.sizeMin && s <= P.sizeMax) break;
    }
    sizes[i] = Math.min(P.sizeMax, Math.max(P.sizeMin, s));
  }
  const perm = Array.from({ length: P.objects }, (_, i) => i); // rank r+1 → object perm[r]
  for (let i = P.objects - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const cdf = new Float64Array(P.objects);
  let acc = 0;
  for (let r = 0; r < P.objects; r++) cdf[r] = acc += 1 / Math.pow(r + 1, P.zipfS);
  const trace = new Uint32Array(requests);
  for (let q = 0; q < requests; q++) {
    const u = rnd() * acc;
    let lo = 0;
    let hi = P.objects - 1;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (cdf[m] < u) lo = m + 1;
      else hi = m;
    }
    trace[q] = perm[lo];
  }
  const dataBytes = sizes.reduce((a, b) => a + b, 0);
  const seen = new Uint8Array(P.objects);
  let traceBytes = 0;
  for (const o of trace) {
    traceBytes += sizes[o];
    seen[o] = 1;
  }
  const requested = [];
  for (let i = 0; i < P.objects; i++) if (seen[i]) requested.push(i);
  return {
    params: { ...P, requests },
    sizes,
    trace,
    requested, // object ids the trace asks for (the only ones seeded)
    dataBytes,
    traceBytes,
    cacheBytes: Math.floor(dataBytes / 10),
  };
}

/** Object i's body: xorshift32 words seeded by (seed, i), as the shared bench writes them; incompressible. */
export function objectBody(seed, i, size) {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(i + 1, 0x85ebca6b)) >>> 0 || 1;
  for (let k = 0; k < words.length; k++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[k] = x;
  }
  return Buffer.from(words.buffer, 0, size);
}

/** One request with a whole-body answer: { status, body (string), headers }. */
function send(opts, body, timeoutMs = 60_000) {
  return new Promise((resolve, reject) => {
    const req = http.request({ timeout: timeoutMs, ...opts }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Unsigned PUT of every requested object (`inFlight` at a time, 3 tries each); resolves { objects, bytes, seconds }. */
export async function seedWorkload(endpoint, bucket, wl, { inFlight = 16 } = {}) {
  const u = new URL(endpoint);
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
  const t0 = Date.now();
  const ids = wl.requested;
  let next = 0;
  let bytes = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = ids[next++];
      const body = objectBody(wl.params.seed, i, wl.sizes[i]);
      const opts = { host: u.hostname, port: u.port, agent, method: 'PUT', path: `/${bucket}/${zipfKey(i)}`,
        headers: { 'content-type': 'application/octet-stream', 'content-length': body.length } };
      let why = '';
      for (let attempt = 0; attempt < 3; attempt++) {
        const r = await send(opts, body).catch((err) => ({ status: 0, body: err.message }));
        if (r.status === 200) {
          why = '';
          break;
        }
        why = `HTTP ${r.status} ${r.body.slice(0, 200)}`;
      }
      if (why) throw new Error(`PUT ${zipfKey(i)}: ${why}`);
      bytes += body.length;
    }
  };
  try {
    await Promise.all(Array.from({ length: inFlight }, worker));
  } finally {
    agent.destroy();
  }
  return { objects: ids.length, bytes, seconds: (Date.now() - t0) / 1000 };
}

/** HEADs `n` seeded objects spread over the set; resolves the list of what was missing or the wrong size. */
export async function checkSeeded(endpoint, bucket, wl, n = 50) {
  const u = new URL(endpoint);
  const bad = [];
  const ids = wl.requested;
  for (let k = 0; k < n; k++) {
    const i = ids[Math.floor((k * ids.length) / n)];
    const r = await send({ host: u.hostname, port: u.port, method: 'HEAD', path: `/${bucket}/${zipfKey(i)}`, agent: false }).catch((err) => ({ status: err.message, headers: {} }));
    if (r.status !== 200 || Number(r.headers['content-length']) !== wl.sizes[i]) bad.push(`${zipfKey(i)}: ${r.status} ${r.headers['content-length']}`);
  }
  return bad;
}

/**
 * Counting relay on a free port in this process: forwards every request unchanged to 127.0.0.1:`upstreamPort`
 * (s3rver) and streams the answer back. `stats`: requests by method, statuses, origin Content-Length sum and
 * streamed body bytes of GETs, distinct GET paths. A bodiless request whose upstream socket fails before any
 * answer (a keep-alive socket s3rver was closing) is retried once and counted in `retries`, not twice.
 */
export function startRelay(upstreamPort) {
  const stats = { requests: 0, gets: 0, get_status: {}, get_cl_bytes: 0, get_body_bytes: 0, other: {}, retries: 0, upstream_errors: 0, aborted: 0, distinct_get_paths: 0 };
  const paths = new Set();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const server = http.createServer((req, res) => {
    const isGet = req.method === 'GET';
    stats.requests++;
    if (isGet) {
      stats.gets++;
      paths.add(req.url.split('?')[0]);
    } else stats.other[req.method] = (stats.other[req.method] ?? 0) + 1;
    const bodiless = (isGet || req.method === 'HEAD') && !req.headers['content-length'] && !req.headers['transfer-encoding'];
    let up = null;
    res.on('close', () => {
      if (!res.writableFinished) {
        stats.aborted++;
        up?.destroy();
      }
    });
    const forward = (attempt) => {
      up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent }, (upRes) => {
        if (isGet) {
          stats.get_status[upRes.statusCode] = (stats.get_status[upRes.statusCode] ?? 0) + 1;
          stats.get_cl_bytes += Number(upRes.headers['content-length']) || 0;
          upRes.on('data', (c) => (stats.get_body_bytes += c.length));
        }
        res.writeHead(upRes.statusCode, upRes.statusMessage, upRes.rawHeaders);
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
      });
      up.on('error', () => {
        stats.upstream_errors++;
        if (bodiless && attempt === 1 && !res.headersSent && !res.destroyed) {
          stats.retries++;
          return forward(2);
        }
        if (res.headersSent) res.destroy();
        else res.writeHead(502, { 'content-type': 'text/plain' }).end('relay: upstream error\n');
      });
      if (bodiless) up.end();
      else req.pipe(up);
    };
    if (bodiless) req.resume();
    forward(1);
  });
  server.keepAliveTimeout = 75_000; // longer than the proxies' idle upstream sockets (nginx: 60 s), so they close first
  server.headersTimeout = 80_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        port,
        endpoint: `http://127.0.0.1:${port}`,
        stats: () => ({ ...stats, distinct_get_paths: paths.size }),
        close: () =>
          new Promise((done) => {
            agent.destroy();
            server.closeAllConnections?.();
            server.close(() => done());
          }),
      });
    });
  });
}

/**
 * Replays the trace against `${base}/${prefix}/<key>`, `concurrency` requests in flight over keep-alive
 * connections. A request is ok only when it answers 200 with exactly the object's size in body bytes (and a
 * matching Content-Length). No new request starts after `maxSeconds`. `onProgress(st)` every 15 s.
 */
export async function replayTrace({ base, prefix, wl, concurrency = 32, maxSeconds = 600, onProgress }) {
  const u = new URL(base);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const st = { entries: wl.trace.length, sent: 0, ok: 0, failed: 0, client_bytes: 0, x_cache: {}, failures: {}, first_failures: [], truncated_by_time: false, elapsed_s: 0 };
  const failed = (key, why) => {
    st.failed++;
    st.failures[why] = (st.failures[why] ?? 0) + 1;
    if (st.first_failures.length < 5) st.first_failures.push(`${key}: ${why}`);
  };
  const get = (obj) =>
    new Promise((resolve) => {
      const key = zipfKey(obj);
      const req = http.get({ host: u.hostname, port: u.port, path: `/${prefix}/${key}`, agent, timeout: 60_000 }, (res) => {
        let n = 0;
        const xc = res.headers['x-cache'];
        if (xc) st.x_cache[xc] = (st.x_cache[xc] ?? 0) + 1;
        res.on('data', (c) => (n += c.length));
        res.on('end', () => {
          st.client_bytes += n;
          const cl = res.headers['content-length'];
          if (res.statusCode !== 200) failed(key, `HTTP ${res.statusCode}`);
          else if (n !== wl.sizes[obj]) failed(key, 'body length');
          else if (cl !== undefined && Number(cl) !== n) failed(key, 'content-length');
          else st.ok++;
          resolve();
        });
        res.on('error', (err) => {
          failed(key, `response ${err.code ?? err.message}`);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => {
        failed(key, `request ${err.code ?? err.message}`);
        resolve();
      });
    });
  const t0 = Date.now();
  const deadline = t0 + maxSeconds * 1000;
  const progress = onProgress ? setInterval(() => onProgress(st, (Date.now() - t0) / 1000), 15_000) : null;
  let next = 0;
  const worker = async () => {
    while (next < wl.trace.length) {
      if (Date.now() >= deadline) {
        st.truncated_by_time = true;
        return;
      }
      const obj = wl.trace[next++];
      st.sent++;
      await get(obj);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    if (progress) clearInterval(progress);
    agent.destroy();
  }
  st.elapsed_s = (Date.now() - t0) / 1000;
  return st;
}

/**
 * Offline references over the same trace, each miss one origin GET of the whole object:
 *   lru          byte budget `budget`, every miss admitted (a plain proxy cache)
 *   belady-size  offline, on a miss evict the largest (distance to next use × size) while that beats the
 *                newcomer's own score, else do not admit it (the shared bench's strong GET-count reference)
 *   infinite     no budget: only first-touch (compulsory) misses
 * Returns [{ name, origin_gets, origin_bytes }].
 */
export function simulate(wl, budget) {
  const { trace, sizes } = wl;
  const R = trace.length;
  const rows = [];
  const row = (name, gets, bytes) => rows.push({ name, origin_gets: gets, origin_bytes: bytes });

  // lru: Map insertion order is recency.
  {
    const cache = new Map();
    let used = 0;
    let gets = 0;
    let bytes = 0;
    for (const o of trace) {
      if (cache.delete(o)) {
        cache.set(o, true);
        continue;
      }
      gets++;
      bytes += sizes[o];
      if (sizes[o] > budget) continue;
      for (const v of cache.keys()) {
        if (used + sizes[o] <= budget) break;
        cache.delete(v);
        used -= sizes[v];
      }
      cache.set(o, true);
      used += sizes[o];
    }
    row('lru', gets, bytes);
  }

  // belady-size: needs each request's next use of the same object.
  {
    const NEVER = Infinity;
    const nextUse = new Float64Array(R);
    const last = new Float64Array(sizes.length).fill(NEVER);
    for (let t = R - 1; t >= 0; t--) {
      nextUse[t] = last[trace[t]];
      last[trace[t]] = t;
    }
    const held = []; // cached ids; removal swaps the last one in (the scan order matters only for ties)
    const slot = new Int32Array(sizes.length).fill(-1);
    const nu = new Float64Array(sizes.length);
    let used = 0;
    let gets = 0;
    let bytes = 0;
    for (let t = 0; t < R; t++) {
      const o = trace[t];
      if (slot[o] >= 0) {
        nu[o] = nextUse[t];
        continue;
      }
      gets++;
      bytes += sizes[o];
      if (nextUse[t] === NEVER || sizes[o] > budget) continue;
      nu[o] = nextUse[t];
      const score = (v) => (nu[v] - t) * sizes[v]; // Infinity when never used again
      const victims = new Set();
      let freed = 0;
      while (used - freed + sizes[o] > budget) {
        let best = -1;
        let bestScore = -1;
        for (const v of held)
          if (!victims.has(v) && score(v) > bestScore) {
            bestScore = score(v);
            best = v;
          }
        if (best < 0 || bestScore <= score(o)) break;
        victims.add(best);
        freed += sizes[best];
      }
      if (used - freed + sizes[o] > budget) continue; // the newcomer is the worst to keep: not admitted
      for (const v of victims) {
        const i = slot[v];
        const moved = held.pop();
        if (moved !== v) {
          held[i] = moved;
          slot[moved] = i;
        }
        slot[v] = -1;
        used -= sizes[v];
      }
      slot[o] = held.length;
      held.push(o);
      used += sizes[o];
    }
    row('belady-size', gets, bytes);
  }

  // infinite
  {
    const seen = new Uint8Array(sizes.length);
    let gets = 0;
    let bytes = 0;
    for (const o of trace)
      if (!seen[o]) {
        seen[o] = 1;
        gets++;
        bytes += sizes[o];
      }
    row('infinite', gets, bytes);
  }
  return rows;
}

/** Calls `fn()` every `ms` until stopped (never two at once); `stop()` resolves the non-null values it returned. */
export function sampleEvery(ms, fn) {
  const values = [];
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const v = await fn();
      if (v !== null && v !== undefined) values.push(v);
    } catch {
      /* a missed sample */
    } finally {
      busy = false;
    }
  }, ms);
  return {
    stop: async () => {
      clearInterval(timer);
      while (busy) await new Promise((r) => setTimeout(r, 20));
      try {
        const v = await fn();
        if (v !== null && v !== undefined) values.push(v);
      } catch {
        /* ignore */
      }
      return values;
    },
  };
}
