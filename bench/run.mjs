#!/usr/bin/env node
// `npm run bench`: Karasu side by side with direct s3rver and nginx proxy_cache, on loopback.
//
//   all-miss  cache disabled: direct s3rver (signed GETs: presigned URLs) vs Karasu → s3rver (1 KiB, 1 MiB);
//             target Karasu/direct >= 0.9. Shown beside it: anonymous direct GETs, nginx as a plain proxy_pass
//   hot-hit   cache warmed: Karasu vs nginx proxy_cache, 1 worker (1 KiB, 16 KiB, 1 MiB);
//             targets Karasu/nginx >= 0.8 (1–16 KiB) and >= 2 (1 MiB), per core
//   big       256 MiB GETs (15 each), signed direct vs Karasu: TTFB (ratio <= 2), total, Karasu peak RSS growth
//             (<= 64 MiB); anonymous direct and nginx as a plain proxy_pass shown beside it
//   hot-hit-auth   Karasu hot hits (1 KiB, memory tier) on a public bucket vs an HS256- and an ES256-protected
//                  bucket of the same process, one token per scheme on every request; target >= 0.9 each
//   hot-hit-audit  Karasu hot hits (1 KiB) without vs with the audit log to a file, toggled by reloads of one
//                  process; target >= 0.9, and the audit lines written are counted against the requests answered
//   zipf      Zipf(1.0) GET trace over 10,000 objects (415 MiB) through Karasu (memory tier held at 10 % of the
//             bytes) and nginx proxy_cache (max_size the same), origin counted by a relay; target: Karasu saves
//             >= 80 % of S3 GETs. Offline references (LRU, belady-size, infinite cache) over the same trace.
//
// Rounds are interleaved (A B, then B A, …) so machine drift cancels; the table shows medians over rounds.
// With taskset and >= 2 CPUs the load generator runs on CPU 0; the process under test gets CPU 1 in hot-hit*,
// s3rver gets CPU 1 in all-miss/big (the origin is "another machine"); zipf (counts, not speed) pins nothing.
// wrk is used when installed, else a Node keep-alive client. nginx columns are skipped (with a note) when nginx is not installed.
// See docs/benchmarks.md.
import { createReadStream, readFileSync, readdirSync, mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { parseArgs } from 'node:util';
import { spawn, spawnSync } from 'node:child_process';
import { SignJWT, exportSPKI, generateKeyPair } from 'jose';
import { reloadKarasu, startKarasu, ROOT } from './lib/karasu.mjs';
import { runLoad } from './lib/load.mjs';
import { nginxVersion, startNginx } from './lib/nginx.mjs';
import { aggregate, bigTable, comparisonTable, median, zipfTable } from './lib/report.mjs';
import { BUCKET, fetchDigest, presignedUrl, putRandomObject, startS3rver } from './lib/s3.mjs';
import { CLK_TCK, cpuTicks, groupCpuTicks, hasCommand, killAllSync, repin, rssKiB, runBounded, sleep, stopAll, stopChild } from './lib/procs.mjs';
import { ZIPF_BUCKET, ZIPF_FULL_TRACE, checkSeeded, makeWorkload, replayTrace, sampleEvery, seedWorkload, simulate, startRelay } from './lib/zipf.mjs';

const SCENARIOS = ['all-miss', 'hot-hit', 'big', 'hot-hit-auth', 'hot-hit-audit', 'zipf'];
const SIZES = { '1k': 1024, '16k': 16 * 1024, '1m': 1024 * 1024, '20m': 20 * 1024 * 1024, '256m': 256 * 1024 * 1024 };
const MiB = 1024 * 1024;

const USAGE = `usage: npm run bench -- [options]
  --duration S      seconds per measured load run (default 10)
  --rounds N        interleaved rounds (default 2)
  --only LIST       comma list of ${SCENARIOS.join(', ')} (default: all)
  --quick           --duration 3 --rounds 1, shorter warm-up, --zipf-requests 20000
  --connections N   concurrent keep-alive connections (default 50)
  --client C        wrk | node (default: wrk when installed)
  --zipf-requests N zipf: replay the first N of the 200,000-GET trace (default: all of it; --quick 20000)
  --max-seconds S   hard bound for the whole run (default: about twice the estimate)
  --keep            keep the scratch folder (s3rver data incl. the zipf bucket, nginx caches); logs and results are always kept
`;

// ─── options and environment ─────────────────────────────────────────────────────────────────────────

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      rounds: { type: 'string' },
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      connections: { type: 'string', default: '50' },
      client: { type: 'string' },
      'zipf-requests': { type: 'string' },
      'max-seconds': { type: 'string' },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const int = (v, name, lo, hi) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) fail(`--${name} must be an integer in ${lo}..${hi}`);
    return n;
  };
  const duration = int(values.duration ?? (values.quick ? 3 : 10), 'duration', 1, 120);
  const rounds = int(values.rounds ?? (values.quick ? 1 : 2), 'rounds', 1, 10);
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : SCENARIOS;
  for (const s of only) if (!SCENARIOS.includes(s)) fail(`unknown scenario '${s}' (known: ${SCENARIOS.join(', ')})`);
  if (values.client && !['wrk', 'node'].includes(values.client)) fail('--client must be wrk or node');
  const opts = {
    duration,
    rounds,
    only,
    quick: values.quick,
    warmSeconds: values.quick ? 1 : Math.min(2, duration),
    connections: int(values.connections, 'connections', 1, 1000),
    client: values.client,
    zipfRequests: int(values['zipf-requests'] ?? (values.quick ? 20_000 : ZIPF_FULL_TRACE), 'zipf-requests', 1000, ZIPF_FULL_TRACE),
    keep: values.keep,
  };
  opts.maxSeconds = values['max-seconds'] ? int(values['max-seconds'], 'max-seconds', 10, 7200) : 2 * estimateSeconds(opts) + 120;
  return opts;
}

function estimateSeconds(o) {
  const perPair = o.rounds * o.duration + o.warmSeconds;
  let s = 20; // starts, seeding
  if (o.only.includes('all-miss')) s += 2 * 4 * perPair + 5;
  if (o.only.includes('hot-hit')) s += 3 * 2 * perPair + 5;
  if (o.only.includes('big')) s += 20 + Math.max(BIG_SAMPLES, o.rounds) * BIG_TARGETS.length;
  const short = shortRounds(o);
  const perShortPair = short.rounds * short.seconds + o.warmSeconds;
  if (o.only.includes('hot-hit-auth')) s += 3 * perShortPair + 10;
  if (o.only.includes('hot-hit-audit')) s += short.rounds * 2 * (short.seconds + o.warmSeconds + 5) + 10;
  if (o.only.includes('zipf')) s += zipfEstimate(o.zipfRequests);
  return s;
}

function fail(msg) {
  process.stderr.write(`bench: ${msg}\n${USAGE}`);
  process.exit(2);
}

function detectEnvironment(opts) {
  const nproc = os.availableParallelism?.() ?? os.cpus().length;
  const pin = hasCommand('taskset') && nproc >= 2;
  const wrk = hasCommand('wrk');
  if (opts.client === 'wrk' && !wrk) fail('--client wrk: wrk is not installed');
  return {
    nproc,
    pin,
    clientCpu: pin ? 0 : null,
    serverCpu: pin ? 1 : null,
    useWrk: opts.client ? opts.client === 'wrk' : wrk,
    nginx: hasCommand('nginx') ? nginxVersion() : null,
    curl: hasCommand('curl'),
  };
}

function machineFacts(env) {
  const wrkV = env.useWrk ? (spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout || '').split('\n')[0].trim() : null;
  const pkg = (p) => JSON.parse(readFileSync(p, 'utf8')).version;
  return {
    nproc: env.nproc,
    cpu_model: os.cpus()[0]?.model ?? 'unknown',
    mem_gib: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    karasu: pkg(path.join(ROOT, 'package.json')),
    s3rver: pkg(path.join(ROOT, 'node_modules', 's3rver', 'package.json')),
    nginx: env.nginx ?? 'not installed',
    load_generator: env.useWrk ? wrkV || 'wrk' : `node keep-alive client (bench/lib/loadgen.mjs)`,
    pinning: env.pin ? `taskset: client CPU ${env.clientCpu}, server CPU ${env.serverCpu}` : 'none (taskset missing or < 2 CPUs)',
  };
}

// ─── run state ───────────────────────────────────────────────────────────────────────────────────────

const log = (msg) => process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${msg}\n`);

function newContext(opts, env) {
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'karasu-bench-'));
  mkdirSync(path.join(scratch, 'logs'));
  return { opts, env, scratch, s3: null, objects: {}, pairs: [], samples: [], big: null, audit: null, zipf: null, notes: [], verdicts: [], t0: Date.now() };
}

async function ensureObject(ctx, key) {
  if (ctx.objects[key]) return;
  const t = Date.now();
  const md5 = await putRandomObject(ctx.s3.endpoint, `obj-${key}`, SIZES[key]);
  ctx.objects[key] = { size: SIZES[key], md5 };
  if (SIZES[key] >= MiB * 16) log(`seeded obj-${key} in ${((Date.now() - t) / 1000).toFixed(1)} s`);
}

/** `prefix`: the route prefix (a Karasu bucket's `path_prefix` without the slash); default the bucket name. */
const objectUrl = (base, key, prefix = BUCKET) => `${base}/${prefix}/obj-${key}`;
const targetUrl = (t, key) => t.urls?.[key] ?? objectUrl(t.base, key, t.prefix);

/** GETs the object through `base`; returns null when status and body are right, else what was wrong. */
async function verifyObject(ctx, target, key) {
  try {
    const r = await fetchDigest(targetUrl(target, key));
    if (r.status !== 200) return `HTTP ${r.status}`;
    if (r.md5 !== ctx.objects[key].md5) return `body differs (${r.bytes} bytes)`;
    return null;
  } catch (err) {
    return err.message;
  }
}

// ─── measuring ───────────────────────────────────────────────────────────────────────────────────────

/** One load run; CPU % of each watched process group over the run (100 = one core). */
async function measure(ctx, { scenario, size, target, round, seconds }) {
  const { opts, env } = ctx;
  throwIfStopping();
  const watched = target.watch;
  const before = Object.fromEntries(Object.entries(watched).map(([n, pid]) => [n, groupCpuTicks(pid)]));
  const clientBefore = env.clientCpu === null ? null : cpuTicks(env.clientCpu);
  const t = Date.now();
  const r = await runLoad({
    url: targetUrl(target, size),
    connections: opts.connections,
    seconds,
    cpu: env.clientCpu,
    useWrk: env.useWrk,
    headers: target.headers,
  });
  countSent(target, r);
  const secs = (Date.now() - t) / 1000;
  throwIfStopping(); // children are being killed: this run's numbers mean nothing
  const cpu_pct = Object.fromEntries(
    Object.entries(watched).map(([n, pid]) => [n, (100 * (groupCpuTicks(pid) - before[n])) / CLK_TCK / secs]),
  );
  // How busy the load generator's core was: near 100 %, the client and not the server sets the rate.
  const clientAfter = clientBefore && cpuTicks(env.clientCpu);
  const client_core_busy_pct =
    clientBefore && clientAfter && clientAfter.total > clientBefore.total
      ? (100 * (clientAfter.busy - clientBefore.busy)) / (clientAfter.total - clientBefore.total)
      : null;
  const sample = { scenario, size, target: target.name, round, ...r, cpu_pct, client_core_busy_pct, loadavg_1m: os.loadavg()[0] };
  ctx.samples.push(sample);
  const errs = r.errors ? `, ${r.errors} errors` : '';
  log(`${scenario} ${size} ${target.name} r${round}: ${r.error ? `FAILED (${r.error})` : `${Math.round(r.rps)} req/s, p99 ${r.p99_ms.toFixed(1)} ms${errs}`}`);
}

/** Requests a target answered per the load generator, and its load runs (for the audit line count). */
function countSent(target, r) {
  target.sent = (target.sent ?? 0) + (r.requests || 0);
  target.runs = (target.runs ?? 0) + 1;
}

/**
 * The same-process comparisons (hot-hit-auth, hot-hit-audit) judge a 10 % difference: twice the rounds at
 * half the length, so the paired per-round ratio has more pairs to take its median over in the same time.
 */
function shortRounds(opts) {
  return { rounds: opts.rounds * 2, seconds: Math.max(2, Math.ceil(opts.duration / 2)) };
}

/** Warm-up (unrecorded), then rounds A B / B A / … per size. */
async function measureInterleaved(ctx, scenario, sizes, targets, shape = { rounds: ctx.opts.rounds, seconds: ctx.opts.duration }) {
  const { opts, env } = ctx;
  for (const size of sizes)
    for (const t of targets[size]) {
      throwIfStopping();
      const w = await runLoad({ url: targetUrl(t, size), connections: opts.connections, seconds: opts.warmSeconds, cpu: env.clientCpu, useWrk: env.useWrk, headers: t.headers });
      countSent(t, w);
    }
  for (let round = 1; round <= shape.rounds; round++) {
    for (const size of sizes) {
      const order = round % 2 ? targets[size] : [...targets[size]].reverse();
      for (const target of order) await measure(ctx, { scenario, size, target, round, seconds: shape.seconds });
    }
  }
}

// ─── scenarios ───────────────────────────────────────────────────────────────────────────────────────

async function allMiss(ctx) {
  const { env } = ctx;
  const sizes = ['1k', '1m'];
  // Judged against signed direct GETs (presigned URLs): Karasu signs every request it sends, and s3rver
  // spends ~8 % more CPU verifying a signature than answering an anonymous GET, a cost of the origin, not
  // of the proxy. The anonymous baseline is shown beside it.
  for (const size of sizes)
    ctx.pairs.push({ scenario: 'all-miss', size, base: 'direct', subject: 'karasu', target: { op: '>=', value: 0.9 } });
  for (const size of sizes) ctx.pairs.push({ scenario: 'all-miss', size, base: 'direct-anon', subject: 'karasu', reference: true });
  // nginx as a plain proxy_pass (unsigned), on the same core as Karasu: what a proxy written in C loses
  // against direct (anonymous) when it shares the load generator's core.
  if (env.nginx)
    for (const size of sizes) ctx.pairs.push({ scenario: 'all-miss', size, base: 'direct-anon', subject: 'nginx-pass', reference: true });
  repin(ctx.s3.child.pid, env.serverCpu);
  const karasu = await startKarasu(ctx.scratch, { s3Endpoint: ctx.s3.endpoint, cache: false, cpu: env.clientCpu, tag: 'nocache' });
  const nginx = env.nginx ? await startNginx(ctx.scratch, { s3Port: ctx.s3.port, cpu: env.clientCpu, cache: false, name: 'nginx-pass' }) : null;
  try {
    const urls = {};
    for (const size of sizes) urls[size] = await presignedUrl(ctx.s3.endpoint, `/${BUCKET}/obj-${size}`);
    const direct = { name: 'direct', base: ctx.s3.endpoint, urls, watch: { s3rver: ctx.s3.child.pid } };
    const anonymous = { name: 'direct-anon', base: ctx.s3.endpoint, watch: { s3rver: ctx.s3.child.pid } };
    const proxy = { name: 'karasu', base: karasu.base, watch: { karasu: karasu.child.pid, s3rver: ctx.s3.child.pid } };
    const candidates = [direct, anonymous, proxy];
    if (nginx) candidates.push({ name: 'nginx-pass', base: nginx.base, watch: { nginx: nginx.child.pid, s3rver: ctx.s3.child.pid } });
    const targets = {};
    for (const size of sizes) targets[size] = await usableTargets(ctx, 'all-miss', size, candidates);
    await measureInterleaved(ctx, 'all-miss', sizes, targets);
  } finally {
    await stopChild(karasu.child);
    if (nginx) await stopChild(nginx.child, { signal: nginx.stopSignal });
  }
}

/** Targets that serve the object correctly; a broken one is noted and left out. */
async function usableTargets(ctx, scenario, size, targets) {
  const ok = [];
  for (const t of targets) {
    const why = await verifyObject(ctx, t, size);
    if (why) ctx.notes.push(`${scenario} ${size}: ${t.name} left out: ${why}`);
    else ok.push(t);
  }
  return ok;
}

async function hotHit(ctx) {
  const { env } = ctx;
  const sizes = ['1k', '16k', '1m'];
  repin(ctx.s3.child.pid, env.clientCpu); // idle once warm; keep the server core for the proxies
  const pairNotes = {};
  for (const size of sizes)
    ctx.pairs.push({
      scenario: 'hot-hit',
      size,
      base: 'nginx',
      subject: 'karasu',
      target: { op: '>=', value: size === '1m' ? 2 : 0.8 },
      perCpu: true,
      get note() {
        return pairNotes[size] ?? pairNotes.all;
      },
    });
  const karasu = await startCachedKarasu(ctx, env.serverCpu, pairNotes);
  const nginx = await startNginxPeer(ctx, pairNotes);
  try {
    const targets = {};
    for (const size of sizes) {
      targets[size] = [];
      if (nginx && (await warmAndCheckHit(ctx, nginx, size, pairNotes)))
        targets[size].push({ name: 'nginx', base: nginx.base, watch: { nginx: nginx.child.pid } });
      if (karasu && (await warmAndCheckHit(ctx, karasu, size, pairNotes)))
        targets[size].push({ name: 'karasu', base: karasu.base, watch: { karasu: karasu.child.pid } });
    }
    await measureInterleaved(ctx, 'hot-hit', sizes, targets);
    noteSaturatedClient(ctx, 'hot-hit', sizes);
  } finally {
    if (karasu) await stopChild(karasu.child);
    if (nginx) await stopChild(nginx.child, { signal: 'SIGQUIT' });
  }
}

/**
 * A note for each size at which the load generator's core was saturated (median busy >= 95 %) for every
 * target: there the req/s ratio says how cheaply the client reads each server's answers, not which server
 * is faster.
 */
function noteSaturatedClient(ctx, scenario, sizes) {
  for (const size of sizes) {
    const byTarget = {};
    for (const s of ctx.samples) {
      if (s.scenario !== scenario || s.size !== size || s.client_core_busy_pct === null) continue;
      (byTarget[s.target] ??= []).push(s.client_core_busy_pct);
    }
    const medians = Object.entries(byTarget).map(([name, xs]) => [name, median(xs)]);
    if (medians.length === 0 || medians.some(([, m]) => m < 95)) continue;
    const shown = medians.map(([name, m]) => `${name} ${Math.round(m)} %`).join(', ');
    ctx.notes.push(`${scenario} ${size}: the load generator's core was saturated (${shown} busy): the client, not the proxies, set the rate`);
  }
}

async function startCachedKarasu(ctx, cpu, pairNotes) {
  try {
    const k = await startKarasu(ctx.scratch, { s3Endpoint: ctx.s3.endpoint, cache: true, cpu, tag: 'cache' });
    k.name = 'karasu';
    return k;
  } catch (err) {
    const first = String(err.message).split('\n').slice(0, 3).join(' ');
    ctx.notes.push(`hot-hit: cache not available: Karasu did not start with the cache config (${first})`);
    pairNotes.all = 'cache not available';
    return null;
  }
}

async function startNginxPeer(ctx, pairNotes) {
  if (!ctx.env.nginx) {
    ctx.notes.push('hot-hit: nginx is not installed: nginx columns skipped (apt-get install -y nginx)');
    pairNotes.all ??= 'nginx not installed';
    return null;
  }
  try {
    const n = await startNginx(ctx.scratch, { s3Port: ctx.s3.port, cpu: ctx.env.serverCpu });
    n.name = 'nginx';
    return n;
  } catch (err) {
    ctx.notes.push(`hot-hit: nginx did not start: ${String(err.message).split('\n').slice(0, 3).join(' ')}`);
    pairNotes.all ??= 'nginx did not start';
    return null;
  }
}

/**
 * GETs the object up to 3 times through `peer` (its `prefix` and `headers` when given); true once it answers
 * X-Cache: HIT with the right body.
 */
async function warmAndCheckHit(ctx, peer, size, pairNotes, scenario = 'hot-hit') {
  const seen = [];
  for (let i = 0; i < 3; i++) {
    let r;
    peer.sent = (peer.sent ?? 0) + 1;
    try {
      r = await fetchDigest(targetUrl(peer, size), { headers: peer.headers });
    } catch (err) {
      seen.push(err.message);
      continue;
    }
    const xc = String(r.headers['x-cache'] ?? 'absent');
    seen.push(`${r.status} X-Cache ${xc}`);
    if (r.status === 200 && r.md5 !== ctx.objects[size].md5) {
      ctx.notes.push(`${scenario} ${size}: ${peer.name} served a wrong body`);
      return false;
    }
    if (r.status === 200 && /^HIT\b/i.test(xc)) return true;
  }
  const note = peer.name === 'karasu' ? 'cache not available' : `${peer.name} never said HIT`;
  ctx.notes.push(`${scenario} ${size}: ${note} (${peer.name} answered: ${seen.join('; ')})`);
  pairNotes[size] ??= note;
  return false;
}

// ─── hot-hit-auth, hot-hit-audit ─────────────────────────────────────────────────────────────────────

const firstLines = (err) => String(err?.message ?? err).split('\n').slice(0, 3).join(' ');

/** An HS256 secret, an ES256 key pair (public key as SPKI PEM in scratch/jwt), and one token per scheme. */
async function authMaterial(ctx) {
  const dir = path.join(ctx.scratch, 'jwt');
  mkdirSync(dir, { recursive: true });
  const secret = randomBytes(32).toString('hex'); // 32 random bytes; Karasu uses the string's UTF-8 bytes
  const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
  const esPublicKeyPath = path.join(dir, 'es256-public.pem');
  writeFileSync(esPublicKeyPath, await exportSPKI(publicKey));
  const mint = (alg, key) => new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg }).setExpirationTime('2h').sign(key);
  return {
    secret,
    esPublicKeyPath,
    tokens: { HS256: await mint('HS256', Buffer.from(secret, 'utf8')), ES256: await mint('ES256', privateKey) },
  };
}

/** A protected target must answer 401 to no token and to the other scheme's token; null when it does. */
async function checkRefusals(t, otherToken) {
  const tries = [
    ['no token', {}],
    [`an ${t.other} token`, { authorization: `Bearer ${otherToken}` }],
  ];
  for (const [what, headers] of tries) {
    t.sent = (t.sent ?? 0) + 1;
    try {
      const r = await fetchDigest(targetUrl(t, '1k'), { headers, timeoutMs: 10_000 });
      if (r.status !== 401) return `${what} was answered HTTP ${r.status}, not 401`;
    } catch (err) {
      return `${what}: ${err.message}`;
    }
  }
  return null;
}

/** Karasu hot hits on a public bucket vs an HS256- and an ES256-protected one, all three in one process. */
async function hotHitAuth(ctx) {
  const { env, opts } = ctx;
  const scenario = 'hot-hit-auth';
  const size = '1k';
  repin(ctx.s3.child.pid, env.clientCpu); // idle once warm
  const pairNotes = {};
  for (const alg of ['HS256', 'ES256'])
    ctx.pairs.push({
      scenario,
      size,
      label: alg,
      base: 'no-auth',
      subject: alg.toLowerCase(),
      proc: 'karasu',
      target: { op: '>=', value: 0.9 },
      perCpu: true,
      get note() {
        return pairNotes[alg] ?? pairNotes.all;
      },
    });
  const m = await authMaterial(ctx);
  const buckets = [
    { name: BUCKET, prefix: `/${BUCKET}` },
    { name: `${BUCKET}-hs256`, prefix: `/${BUCKET}-hs256`, auth: '{ enabled: true }' },
    {
      name: `${BUCKET}-es256`,
      prefix: `/${BUCKET}-es256`,
      auth: `{ enabled: true, jwt: { enabled: true, algorithm: ES256, ecdsa_public_key_path: "${m.esPublicKeyPath}" } }`,
    },
  ];
  const extra = `jwt: { enabled: true, algorithm: HS256, secret: "${m.secret}" }\n`;
  let karasu;
  try {
    karasu = await startKarasu(ctx.scratch, { s3Endpoint: ctx.s3.endpoint, cache: true, cpu: env.serverCpu, tag: 'auth', buckets, extra, check: true });
  } catch (err) {
    ctx.notes.push(`${scenario}: Karasu did not start with the auth config (${firstLines(err)})`);
    pairNotes.all = 'Karasu did not start';
    return;
  }
  try {
    const watch = { karasu: karasu.child.pid };
    const bearer = (alg) => ({ authorization: `Bearer ${m.tokens[alg]}` });
    const all = [
      { name: 'no-auth', base: karasu.base, prefix: BUCKET, watch },
      { name: 'hs256', alg: 'HS256', other: 'ES256', base: karasu.base, prefix: `${BUCKET}-hs256`, headers: bearer('HS256'), watch },
      { name: 'es256', alg: 'ES256', other: 'HS256', base: karasu.base, prefix: `${BUCKET}-es256`, headers: bearer('ES256'), watch },
    ];
    const targets = [];
    for (const t of all) {
      const refused = t.alg ? await checkRefusals(t, m.tokens[t.other]) : null;
      if (refused) {
        ctx.notes.push(`${scenario} ${size}: ${t.name} left out: authentication not enforced as configured (${refused})`);
        pairNotes[t.alg] = 'auth not enforced';
      } else if (await warmAndCheckHit(ctx, t, size, {}, scenario)) targets.push(t);
      else if (t.alg) pairNotes[t.alg] ??= 'no verified hit';
      else pairNotes.all ??= 'no-auth: no verified hit';
    }
    await measureInterleaved(ctx, scenario, [size], { [size]: targets }, shortRounds(opts));
    // Every token-bearing request must have been authenticated (not served from some bypass).
    const metrics = await fetchMetrics(karasu.base);
    for (const t of all.filter((x) => x.alg && targets.includes(x))) {
      const ok = metricSum(metrics, 'karasu_auth_total', { bucket: `${BUCKET}-${t.name}`, result: 'success' });
      ctx.notes.push(
        `${scenario}: ${t.alg} bucket: karasu_auth_total{result="success"} = ${ok ?? 'absent'} for ${t.sent - 2} token-bearing requests answered (client count)`,
      );
    }
  } finally {
    await stopChild(karasu.child);
  }
}

/** Karasu hot hits without vs with `audit_log` to a file: one process, the audit log turned on and off by reloads. */
async function hotHitAudit(ctx) {
  const { env, opts } = ctx;
  const scenario = 'hot-hit-audit';
  const size = '1k';
  repin(ctx.s3.child.pid, env.clientCpu);
  const pairNotes = {};
  ctx.pairs.push({
    scenario,
    size,
    label: 'file',
    base: 'no-audit',
    subject: 'audit',
    proc: 'karasu',
    target: { op: '>=', value: 0.9 },
    perCpu: true,
    get note() {
      return pairNotes.all;
    },
  });
  const dir = path.join(ctx.scratch, 'audit');
  const file = path.join(dir, 'audit.jsonl');
  const extra = `audit_log:
  enabled: true
  file: { path: "${file}", max_file_size_mb: 1024, max_backup_files: 2 }
`;
  // One process; each run reloads the config with or without audit_log, sides alternating. Two
  // processes of the same build and config differ by up to ~15 % in req/s on this kind of machine,
  // more than the difference measured here; one process toggled by reload has no such offset.
  const sides = [
    { extra: '', target: { name: 'no-audit' } },
    { extra, target: { name: 'audit' } },
  ];
  let k;
  try {
    k = await startKarasu(ctx.scratch, { s3Endpoint: ctx.s3.endpoint, cache: true, cpu: env.serverCpu, tag: 'audit', extra: '', check: true });
  } catch (err) {
    ctx.notes.push(`${scenario}: Karasu did not start (${firstLines(err)})`);
    pairNotes.all = 'Karasu did not start';
    return;
  }
  const shape = shortRounds(opts);
  let whileRunning = 0;
  let measured = false;
  let metrics = [];
  try {
    for (const side of sides) Object.assign(side.target, { base: k.base, watch: { karasu: k.child.pid } });
    if (!(await warmAndCheckHit(ctx, sides[0].target, size, pairNotes, scenario))) return;
    for (let round = 1; round <= shape.rounds; round++) {
      for (const side of round % 2 ? sides : [...sides].reverse()) {
        throwIfStopping();
        const why = await reloadKarasu(k, side.extra);
        if (why) {
          ctx.notes.push(`${scenario}: ${side.target.name}: ${why}`);
          pairNotes.all = 'reload failed';
          return;
        }
        const t = side.target;
        countSent(t, await runLoad({ url: targetUrl(t, size), connections: opts.connections, seconds: opts.warmSeconds, cpu: env.clientCpu, useWrk: env.useWrk }));
        await measure(ctx, { scenario, size, target: t, round, seconds: shape.seconds });
        measured = true;
      }
    }
    // Off: the last audit log flushes and closes; its final counts reach the counter at the next scrape.
    await reloadKarasu(k, '');
    whileRunning = await settledLineCount(dir);
    metrics = await fetchMetrics(k.base);
  } finally {
    await stopChild(k.child);
  }
  if (!measured) return;
  const t = sides[1].target;
  const lines = await readAuditLines(dir);
  const extraLines = lines.lines - (t.sent ?? 0);
  const allowance = (t.runs ?? 0) * opts.connections;
  ctx.audit = {
    requests_answered: t.sent ?? 0,
    load_runs: t.runs ?? 0,
    lines_while_running: whileRunning,
    ...lines,
    extra_lines: extraLines,
    allowed_extra: allowance,
    ok: extraLines >= 0 && extraLines <= allowance && lines.unparsable === 0,
    metric_written: metricSum(metrics, 'karasu_audit_lines_total', { output: 'file', result: 'written' }),
    metric_dropped: metricSum(metrics, 'karasu_audit_lines_total', { output: 'file', result: 'dropped' }),
  };
}

/** Newline count of the audit files in `dir` once it stops growing (a flush is at most 100 ms late). */
async function settledLineCount(dir) {
  let last = -1;
  for (let i = 0; i < 20; i++) {
    const n = await countNewlines(dir);
    if (n === last) return n;
    last = n;
    await sleep(300);
  }
  return last;
}

const auditFiles = (dir) => readdirSync(dir).filter((f) => f.endsWith('.jsonl') && !f.startsWith('.')).map((f) => path.join(dir, f));

async function countNewlines(dir) {
  let n = 0;
  for (const f of auditFiles(dir))
    for await (const chunk of createReadStream(f)) for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) n++;
  return n;
}

/** Every line of the audit files (current and rotated) parsed: counts by what they say. */
async function readAuditLines(dir) {
  const c = { files: 0, lines: 0, unparsable: 0, status_200: 0, cache_hit: 0, incomplete: 0 };
  for (const f of auditFiles(dir)) {
    c.files++;
    for await (const line of readline.createInterface({ input: createReadStream(f), crlfDelay: Infinity })) {
      if (!line) continue;
      c.lines++;
      let r;
      try {
        r = JSON.parse(line);
      } catch {
        c.unparsable++;
        continue;
      }
      if (r.status === 200) c.status_200++;
      if (r.cache_status === 'hit') c.cache_hit++;
      if (r.complete === false) c.incomplete++;
    }
  }
  return c;
}

/** Prometheus text from `${base}/metrics` as [{ name, labels, value }]; [] when unavailable. */
function fetchMetrics(base) {
  return new Promise((resolve) => {
    const req = http.get(`${base}/metrics`, { timeout: 10_000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 ? parseMetrics(body) : []));
      res.on('error', () => resolve([]));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', () => resolve([]));
  });
}

function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of the samples of `name` whose labels include `want`; null when there is none. */
function metricSum(metrics, name, want) {
  const hits = metrics.filter((x) => x.name === name && Object.entries(want).every(([k, v]) => x.labels[k] === v));
  return hits.length ? hits.reduce((a, x) => a + x.value, 0) : null;
}

/**
 * Downloads per target in big. One TTFB is a few milliseconds, most of it s3rver opening the file, and it
 * swings from 3 to 40 ms between downloads on a shared VM: five samples left the median ratio anywhere in
 * 0.9–2.4 from one run to the next. Fifteen cost about 30 s more.
 */
const BIG_SAMPLES = 15;

/**
 * Warm-up downloads per target of a 20 MiB object (over the 16 MiB item limit: Karasu streams it the way it
 * streams the 256 MiB one) before the measured ones, about 5 s. big judges a running proxy, not a process
 * started a second ago: before, Karasu's whole request path ran in V8's interpreter for every measured
 * download, and its time from S3's answer to the first byte out was 0.45–0.75 ms instead of 0.2 ms.
 */
const BIG_WARMUP = 20;

/**
 * big's targets. Karasu is judged against signed direct GETs (a presigned URL), as in all-miss: it signs
 * every request and s3rver then verifies a signature. Anonymous GETs, and nginx as a plain proxy_pass on
 * Karasu's core (unsigned, so beside the anonymous ones), are shown for reference.
 */
const BIG_TARGETS = [
  { name: 'direct', label: 'direct s3rver, signed (presigned URL)' },
  { name: 'karasu', label: 'karasu', base: 'direct', judged: true },
  { name: 'direct-anon', label: 'direct s3rver, anonymous, reference' },
  { name: 'nginx-pass', label: 'nginx proxy_pass, reference', base: 'direct-anon' },
];

async function big(ctx) {
  const { env, opts } = ctx;
  await ensureObject(ctx, '256m');
  repin(ctx.s3.child.pid, env.serverCpu);
  let karasu;
  let cacheNote = 'cache enabled (memory tier, 16 MiB item limit: the object streams past it)';
  try {
    karasu = await startKarasu(ctx.scratch, { s3Endpoint: ctx.s3.endpoint, cache: true, cpu: env.clientCpu, tag: 'big' });
  } catch {
    karasu = await startKarasu(ctx.scratch, { s3Endpoint: ctx.s3.endpoint, cache: false, cpu: env.clientCpu, tag: 'big-nocache' });
    cacheNote = 'cache disabled (the cache config did not start)';
  }
  let nginx = null;
  if (env.nginx) {
    try {
      nginx = await startNginx(ctx.scratch, { s3Port: ctx.s3.port, cpu: env.clientCpu, cache: false, name: 'nginx-big' });
    } catch (err) {
      ctx.notes.push(`big: nginx proxy_pass left out: ${err.message}`);
    }
  }
  const urlsFor = async (size) => {
    const urls = {
      direct: await presignedUrl(ctx.s3.endpoint, `/${BUCKET}/obj-${size}`),
      karasu: objectUrl(karasu.base, size),
      'direct-anon': objectUrl(ctx.s3.endpoint, size),
    };
    if (nginx) urls['nginx-pass'] = objectUrl(nginx.base, size);
    return urls;
  };
  const urls = await urlsFor('256m');
  const warmUrls = await urlsFor('20m');
  const names = Object.keys(urls);
  const runs = Object.fromEntries(names.map((n) => [n, []]));
  await ensureObject(ctx, '20m');
  // RSS growth counts from the idle process, before the warm-up, so it covers what the warm-up kept too.
  const idleRssKiB = rssKiB(karasu.child.pid);
  try {
    for (let i = 0; i < BIG_WARMUP; i++) {
      for (const name of names) {
        throwIfStopping();
        const r = await fetchDigest(warmUrls[name]);
        if (r.status !== 200 || r.md5 !== ctx.objects['20m'].md5) throw new Error(`big warm-up through ${name}: HTTP ${r.status}, ${r.bytes} bytes`);
      }
    }
    for (let round = 1; round <= Math.max(BIG_SAMPLES, opts.rounds); round++) {
      // Each target goes first, middle and last in turn: what the previous download leaves behind (s3rver's
      // garbage, a busy page cache) falls on all of them alike.
      const order = names.map((_, i) => names[(i + round) % names.length]);
      if (round % 2 === 0) order.reverse();
      for (const name of order) {
        throwIfStopping();
        const r = await timedDownload(ctx, urls[name], name === 'karasu' ? karasu.child.pid : null);
        runs[name].push(r);
        log(`big 256m ${name} r${round}: ${r.error ?? `TTFB ${(r.ttfb_s * 1000).toFixed(1)} ms, total ${r.total_s.toFixed(2)} s${r.rss_growth_kib !== undefined ? `, RSS +${(r.rss_growth_kib / 1024).toFixed(1)} MiB` : ''}`}`);
      }
    }
  } finally {
    await stopChild(karasu.child);
    if (nginx) await stopChild(nginx.child, { signal: nginx.stopSignal });
  }
  ctx.big = summarizeBig(runs, cacheNote, ctx.env.curl ? 'curl' : 'node:http', idleRssKiB);
}

function summarizeBig(runs, cacheNote, client, idleRssKiB) {
  const ok = (xs) => xs.filter((r) => !r.error);
  const pick = (xs, k) => median(ok(xs).map((r) => r[k]));
  const rows = [];
  for (const t of BIG_TARGETS) {
    const xs = runs[t.name];
    if (!xs) continue;
    const row = { name: t.name, label: t.label, base: t.base ?? null, judged: t.judged === true, ttfb_s: pick(xs, 'ttfb_s'), total_s: pick(xs, 'total_s') };
    const base = t.base ? rows.find((r) => r.name === t.base) : null;
    if (base) {
      row.ttfb_ratio = row.ttfb_s && base.ttfb_s ? row.ttfb_s / base.ttfb_s : null;
      row.total_ratio = row.total_s && base.total_s ? row.total_s / base.total_s : null;
      // Per round: this target and its baseline a moment apart, so drift between rounds cancels.
      const d = [];
      xs.forEach((r, i) => {
        const b = runs[t.base][i];
        if (!r.error && b && !b.error) d.push(r.ttfb_s - b.ttfb_s);
      });
      row.ttfb_added_s = d.length ? median(d) : null;
    }
    rows.push(row);
  }
  const karasu = rows.find((r) => r.name === 'karasu');
  const growth = ok(runs.karasu).map((r) => r.rss_peak_kib - idleRssKiB);
  const errors = Object.entries(runs).flatMap(([n, xs]) => xs.filter((r) => r.error).map((r) => `${n}: ${r.error}`));
  return {
    samples: Math.max(...Object.values(runs).map((xs) => xs.length)),
    client,
    rows,
    ttfb_ratio: karasu.ttfb_ratio,
    ratio: karasu.total_ratio,
    rss_growth_mib: growth.length ? Math.max(...growth) / 1024 : null,
    karasu_cache: cacheNote,
    note: errors.length ? errors.slice(0, 5).join('; ') : undefined,
    runs,
  };
}

/**
 * One full GET: TTFB (response headers), total; samples `pid`'s VmRSS every 50 ms when given. With curl
 * installed the download runs in curl, not in this process: a Node client receiving 256 MiB leaves
 * garbage that its GC frees on the load generator's core (which the proxy shares) while the next TTFB is timed.
 */
function timedDownload(ctx, url, pid) {
  const want = ctx.objects['256m'];
  return new Promise((resolve) => {
    const baseline = pid ? rssKiB(pid) : 0;
    let peak = baseline;
    const sampler = pid ? setInterval(() => (peak = Math.max(peak, rssKiB(pid))), 50) : null;
    let finished = false;
    // Once: a curl that cannot start reports 'error' and then 'close'.
    const done = (r) => {
      if (finished) return;
      finished = true;
      if (sampler) clearInterval(sampler);
      if (pid) peak = Math.max(peak, rssKiB(pid));
      resolve(pid ? { ...r, rss_baseline_kib: baseline, rss_peak_kib: peak, rss_growth_kib: peak - baseline } : r);
    };
    const judge = (status, bytes, ttfb_s, total_s) => {
      const bad = status !== 200 ? `HTTP ${status}` : bytes !== want.size ? `${bytes} of ${want.size} bytes` : null;
      done(bad ? { error: bad, ttfb_s, total_s } : { ttfb_s, total_s, bytes });
    };
    if (ctx.env.curl) {
      const curl = spawn('curl', ['-sS', '-o', '/dev/null', '--max-time', '120', '-w', '%{http_code} %{size_download} %{time_starttransfer} %{time_total}', url]);
      let out = '';
      curl.stdout.on('data', (d) => (out += d));
      curl.stderr.on('data', (d) => (out += d));
      curl.on('error', (err) => done({ error: `curl: ${err.message}` }));
      curl.on('close', (code) => {
        const m = /^(\d{3}) (\d+) ([\d.]+) ([\d.]+)$/.exec(out.trim());
        if (code !== 0 || !m) return done({ error: `curl exit ${code}: ${out.trim().slice(0, 200)}` });
        judge(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]));
      });
      return;
    }
    const t0 = process.hrtime.bigint();
    const secs = () => Number(process.hrtime.bigint() - t0) / 1e9;
    const req = http.get(url, { agent: false, timeout: 60_000 }, (res) => {
      const ttfb_s = secs();
      let bytes = 0;
      res.on('data', (d) => (bytes += d.length));
      res.on('end', () => judge(res.statusCode, bytes, ttfb_s, secs()));
      res.on('error', (err) => done({ error: err.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out (60 s idle)')));
    req.on('error', (err) => done({ error: err.message }));
  });
}

// ─── zipf ────────────────────────────────────────────────────────────────────────────────────────────

/**
 * Seconds for the zipf scenario on a 2-core VM: seeding what the prefix touches (12 s for 50k GETs, 17 s for all),
 * Karasu's replay (~0.7 s per 1,000 GETs), nginx's (~0.35 s), the sims (< 1 s). Measured: 20k 32 s, 50k 72 s, 200k 259 s.
 */
function zipfEstimate(requests) {
  return 20 + Math.ceil(requests / 1000);
}

/**
 * Replays the Zipf trace through Karasu (memory tier only, held at CACHE_BYTES) and, when installed, nginx
 * proxy_cache (max_size = CACHE_BYTES), each in front of its own counting relay to s3rver; then the offline
 * references over the same trace. Counts, not speed: every process may use every CPU here.
 */
async function zipf(ctx) {
  const { env, opts } = ctx;
  const wl = makeWorkload(opts.zipfRequests);
  const z = {
    requests: wl.trace.length,
    full_trace: ZIPF_FULL_TRACE,
    objects: wl.params.objects,
    seed: wl.params.seed,
    data_bytes: wl.dataBytes,
    cache_bytes: wl.cacheBytes,
    trace_bytes: wl.traceBytes,
    distinct_objects: wl.requested.length,
    concurrency: 32,
    target: { op: '>=', value: 80 },
    rows: [],
    notes: [],
  };
  ctx.zipf = z;
  const allCpus = env.pin ? `0-${env.nproc - 1}` : null;
  const setOwnCpus = (cpus) => spawnSync('taskset', ['-a', '-p', '-c', String(cpus), String(process.pid)], { stdio: 'ignore' });
  if (allCpus) {
    setOwnCpus(allCpus);
    repin(ctx.s3.child.pid, allCpus);
  }
  try {
    log(`zipf: seeding ${wl.requested.length.toLocaleString('en-US')} objects (${(wl.requested.reduce((a, i) => a + wl.sizes[i], 0) / MiB).toFixed(1)} MiB) into bucket ${ZIPF_BUCKET}, 16 in flight`);
    z.seeding = await seedWorkload(ctx.s3.endpoint, ZIPF_BUCKET, wl, { inFlight: 16 });
    const bad = await checkSeeded(ctx.s3.endpoint, ZIPF_BUCKET, wl);
    if (bad.length) throw new Error(`zipf: ${bad.length}/50 seeded objects missing or wrong: ${bad.slice(0, 3).join('; ')}`);
    log(`zipf: seeded ${(z.seeding.bytes / MiB).toFixed(1)} MiB in ${z.seeding.seconds.toFixed(1)} s; ${z.requests.toLocaleString('en-US')} GETs, cache ${z.cache_bytes.toLocaleString('en-US')} B`);
    throwIfStopping();
    z.rows.push(await zipfRun(ctx, wl, 'karasu', allCpus));
    throwIfStopping();
    if (env.nginx) z.rows.push(await zipfRun(ctx, wl, 'nginx', allCpus));
    else z.notes.push('nginx is not installed: no nginx reference row (apt-get install -y nginx)');
    const t = Date.now();
    for (const r of simulate(wl, wl.cacheBytes))
      z.rows.push({ proxy: `sim:${r.name}`, client_gets: z.requests, client_bytes: wl.traceBytes, ...r, ...savings(r.origin_gets, r.origin_bytes, z.requests, wl.traceBytes) });
    log(`zipf: offline references in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  } finally {
    if (allCpus) {
      setOwnCpus(env.clientCpu);
      repin(ctx.s3.child.pid, env.serverCpu);
    }
    if (!opts.keep) rmSync(path.join(ctx.scratch, 's3', ZIPF_BUCKET), { recursive: true, force: true });
  }
}

const savings = (originGets, originBytes, clientGets, clientBytes) => ({
  pct_gets_saved: clientGets ? 100 * (1 - originGets / clientGets) : null,
  byte_hit_ratio: clientBytes ? 1 - originBytes / clientBytes : null,
});

/** One proxy (`karasu` | `nginx`) from an empty cache, behind a fresh relay: replay, then the relay's counts. */
async function zipfRun(ctx, wl, kind, cpu) {
  const z = ctx.zipf;
  const row = { proxy: kind, cache_bytes: wl.cacheBytes };
  const relay = await startRelay(ctx.s3.port);
  let proc = null;
  try {
    try {
      proc = kind === 'karasu' ? await startZipfKarasu(ctx, wl, relay, cpu) : await startNginx(ctx.scratch, { s3Port: relay.port, cpu, location: ZIPF_BUCKET, maxSize: wl.cacheBytes, name: 'nginx-zipf' });
    } catch (err) {
      row.error = `did not start: ${firstLines(err)}`;
      z.notes.push(`${kind}: ${row.error}`);
      return row;
    }
    const sampler = kind === 'karasu' ? sampleEvery(1000, () => karasuTierBytes(proc.base)) : sampleEvery(1000, () => cacheFileBytes(path.join(proc.dir, 'cache')));
    const maxSeconds = Math.max(120, Math.ceil(wl.trace.length / 200));
    log(`zipf ${kind}: replaying ${wl.trace.length.toLocaleString('en-US')} GETs, ${z.concurrency} in flight (bound ${maxSeconds} s)`);
    const st = await replayTrace({
      base: proc.base,
      prefix: ZIPF_BUCKET,
      wl,
      concurrency: z.concurrency,
      maxSeconds,
      onProgress: (s, secs) => log(`zipf ${kind}: ${secs.toFixed(0)} s, ${s.sent.toLocaleString('en-US')} sent, ${s.failed} failed, ${relay.stats().gets.toLocaleString('en-US')} origin GETs`),
    });
    const samples = await sampler.stop();
    if (kind === 'karasu') {
      const tier = samples.filter((x) => x.bytes !== null);
      row.cache_peak_bytes = tier.length ? Math.max(...tier.map((x) => x.bytes)) : null;
      row.cache_budget_bytes = tier.find((x) => x.max !== null)?.max ?? null;
      if (row.cache_budget_bytes !== null && row.cache_budget_bytes !== wl.cacheBytes)
        z.notes.push(`karasu: karasu_cache_max_bytes{tier="memory"} is ${row.cache_budget_bytes}, not CACHE_BYTES ${wl.cacheBytes}`);
    } else if (samples.length) {
      row.cache_peak_bytes = Math.max(...samples);
      row.cache_mean_bytes = Math.round(samples.reduce((a, b) => a + b, 0) / samples.length);
      row.cache_samples_over = samples.filter((b) => b > wl.cacheBytes).length;
      row.cache_samples = samples.length;
    }
    const rs = relay.stats();
    Object.assign(row, {
      client_gets: st.sent,
      ok: st.ok,
      failed: st.failed,
      failures: st.failures,
      first_failures: st.first_failures,
      truncated_by_time: st.truncated_by_time,
      client_bytes: st.client_bytes,
      origin_gets: rs.gets,
      origin_bytes: rs.get_cl_bytes,
      origin_body_bytes: rs.get_body_bytes,
      origin_status: rs.get_status,
      origin_other: rs.requests - rs.gets,
      distinct_keys_fetched: rs.distinct_get_paths,
      relay_retries: rs.retries,
      x_cache: st.x_cache,
      elapsed_s: st.elapsed_s,
      ...savings(rs.gets, rs.get_cl_bytes, st.sent, st.client_bytes),
    });
    log(`zipf ${kind}: ${row.origin_gets.toLocaleString('en-US')} origin GETs for ${row.client_gets.toLocaleString('en-US')} (${row.pct_gets_saved.toFixed(1)} % saved), BHR ${row.byte_hit_ratio.toFixed(3)}, ${row.failed} failed, ${row.elapsed_s.toFixed(1)} s`);
    return row;
  } finally {
    if (proc) await stopChild(proc.child, kind === 'nginx' ? { signal: 'SIGQUIT' } : undefined);
    await relay.close();
    if (kind === 'nginx' && !ctx.opts.keep) rmSync(path.join(ctx.scratch, 'nginx-zipf', 'cache'), { recursive: true, force: true });
  }
}

/** Karasu with only the memory tier, held at exactly CACHE_BYTES (bytes / 2^20 MB: Karasu multiplies back exactly). */
function startZipfKarasu(ctx, wl, relay, cpu) {
  const mb = wl.cacheBytes / MiB;
  return startKarasu(ctx.scratch, {
    s3Endpoint: relay.endpoint,
    cache: true,
    cpu,
    tag: 'zipf',
    buckets: [{ name: ZIPF_BUCKET, prefix: `/${ZIPF_BUCKET}`, s3Bucket: ZIPF_BUCKET }],
    memory: { max_cache_size_mb: String(mb), max_item_size_mb: String(Math.min(16, mb)), default_ttl_seconds: 3600 },
    check: true,
  });
}

/** Karasu's memory tier as charged (bodies + per-entry overhead) and its budget, from /metrics. */
async function karasuTierBytes(base) {
  const m = await fetchMetrics(base);
  return { bytes: metricSum(m, 'karasu_cache_bytes', { tier: 'memory' }), max: metricSum(m, 'karasu_cache_max_bytes', { tier: 'memory' }) };
}

/** Allocated bytes of the files under `dir` (what nginx charges against max_size; directories not counted). */
async function cacheFileBytes(dir) {
  const r = await runBounded('find', [dir, '-type', 'f', '-printf', '%b\\n'], { timeoutMs: 10_000 });
  if (r.code !== 0 || r.timedOut) return null;
  let blocks = 0;
  for (const line of r.stdout.split('\n')) if (line) blocks += Number(line);
  return blocks * 512;
}

// ─── report ──────────────────────────────────────────────────────────────────────────────────────────

function printReport(ctx, status) {
  const { pairs } = ctx;
  const { env, opts } = ctx;
  const facts = machineFacts(env);
  const aggs = aggregate(ctx.samples);
  const out = [];
  out.push('', `## Karasu benchmark — ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`, '');
  out.push(
    `${facts.nproc} CPUs (${facts.cpu_model}), Node ${facts.node}, nginx ${facts.nginx}, s3rver ${facts.s3rver}, ` +
      `load: ${facts.load_generator}, ${opts.connections} connections, ${opts.duration} s × ${opts.rounds} round(s), pinning: ${facts.pinning}.`,
    '',
  );
  const load = median(ctx.samples.map((s) => s.loadavg_1m));
  if (load !== null) out.push(`1-minute load average at the end of the runs: median ${load.toFixed(1)} (the bench itself adds about 2).`, '');
  if (status !== 'complete') out.push(`**Run not complete (${status}): partial results.**`, '');
  const table = comparisonTable(aggs, pairs);
  ctx.verdicts = table.verdicts;
  if (pairs.length) out.push(...table.lines, '');
  if (ctx.big) out.push(...bigTable(ctx.big), '', `big: Karasu ${ctx.big.karasu_cache}.`, '');
  if (ctx.zipf) {
    const z = zipfTable(ctx.zipf);
    out.push(...z.lines, '');
    if (z.verdict) ctx.verdicts.push(z.verdict);
  }
  if (ctx.audit) out.push(auditLine(ctx.audit), '');
  out.push(
    'CPU % = CPU time of that process (group) during the run; 100 = one core. req/s, latency and CPU % are medians over rounds;',
    '"Karasu / baseline" and "per CPU-s" are medians of the ratios measured within each round (back-to-back runs).',
    `hot-hit-auth and hot-hit-audit run ${shortRounds(opts).rounds} rounds of ${shortRounds(opts).seconds} s.`,
    '"per CPU-s" = Karasu\'s requests per CPU-second of its own process over nginx\'s (hot-hit; in hot-hit-auth/-audit:',
    'over Karasu\'s own without auth/audit): the per-core comparison when the load generator, not the proxy, is the limit.',
  );
  for (const a of aggs)
    if (a.errors) out.push(`- note: ${a.scenario} ${a.size} ${a.target}: ${a.errors} failed requests (non-2xx/3xx, timeouts, socket errors) in the measured runs`);
  for (const n of ctx.notes) out.push(`- note: ${n}`);
  process.stdout.write(out.join('\n') + '\n');
  return { facts, aggs };
}

function auditLine(a) {
  const metric = a.metric_written === null ? 'absent' : `${a.metric_written} written, ${a.metric_dropped ?? 0} dropped`;
  return (
    `hot-hit-audit: **${a.lines.toLocaleString('en-US')} audit lines** (${a.lines_while_running.toLocaleString('en-US')} before Karasu stopped) for ` +
    `**${a.requests_answered.toLocaleString('en-US')} requests** answered per the clients → ${a.extra_lines >= 0 ? '+' : ''}${a.extra_lines} ` +
    `(0 … +${a.allowed_extra} expected: requests in flight when each of ${a.load_runs} load runs stopped): ${a.ok ? 'match' : 'MISMATCH'}. ` +
    `Lines: ${a.status_200} status 200, ${a.cache_hit} cache hits, ${a.incomplete} incomplete, ${a.unparsable} unparsable, ${a.files} file(s); ` +
    `karasu_audit_lines_total{output="file"}: ${metric}.`
  );
}

function writeResults(ctx, facts, aggs, status) {
  const file = path.join(ctx.scratch, 'results.json');
  const data = {
    status,
    started: new Date(ctx.t0).toISOString(),
    elapsed_s: Math.round((Date.now() - ctx.t0) / 1000),
    machine: facts,
    options: ctx.opts,
    objects: ctx.objects,
    results: aggs,
    verdicts: ctx.verdicts,
    big: ctx.big,
    audit: ctx.audit,
    zipf: ctx.zipf,
    samples: ctx.samples,
    notes: ctx.notes,
  };
  writeFileSync(file, JSON.stringify(data, null, 2));
  return file;
}

function cleanScratch(ctx) {
  if (ctx.opts.keep) return;
  for (const d of ['s3', 'nginx', 'nginx-zipf', 'audit']) rmSync(path.join(ctx.scratch, d), { recursive: true, force: true });
}

// ─── main ────────────────────────────────────────────────────────────────────────────────────────────

async function finish(ctx, status) {
  await stopAll();
  const { facts, aggs } = printReport(ctx, status);
  const file = writeResults(ctx, facts, aggs, status);
  cleanScratch(ctx);
  process.stdout.write(`\nresults: ${file}\nlogs:    ${path.join(ctx.scratch, 'logs')}\nwhole run: ${Math.round((Date.now() - ctx.t0) / 1000)} s\n`);
}

async function main(ctx) {
  const { opts, env } = ctx;
  if (env.pin) spawnSync('taskset', ['-a', '-p', '-c', String(env.clientCpu), String(process.pid)], { stdio: 'ignore' });
  if (!env.useWrk) ctx.notes.push(`load from the Node keep-alive client (${opts.client === 'node' ? '--client node' : 'wrk not installed'}); it needs more CPU per request than wrk`);
  if (!env.pin) ctx.notes.push('no CPU pinning (taskset missing or fewer than 2 CPUs): client and servers share cores');
  installStopHandlers(ctx);
  log(`scratch ${ctx.scratch}; scenarios ${opts.only.join(', ')}; hard bound ${opts.maxSeconds} s`);

  ctx.s3 = await startS3rver(ctx.scratch, { cpu: env.serverCpu, buckets: opts.only.includes('zipf') ? [BUCKET, ZIPF_BUCKET] : [BUCKET] });
  for (const key of ['1k', '16k', '1m']) await ensureObject(ctx, key);
  if (opts.only.includes('all-miss')) await allMiss(ctx);
  // Before the audit scenario: the writeback of its audit file would disturb a millisecond TTFB.
  if (opts.only.includes('big')) await big(ctx);
  if (opts.only.includes('hot-hit')) await hotHit(ctx);
  if (opts.only.includes('hot-hit-auth')) await hotHitAuth(ctx);
  if (opts.only.includes('hot-hit-audit')) await hotHitAudit(ctx);
  if (opts.only.includes('zipf')) await zipf(ctx);
  await finish(ctx, 'complete');
}

let stopping = false;
function throwIfStopping() {
  if (stopping) throw new Error('stopping');
}

function installStopHandlers(ctx) {
  process.on('exit', killAllSync);
  const abort = async (why, code) => {
    if (stopping) return;
    stopping = true;
    log(`${why}: stopping children, printing what was measured`);
    const hard = setTimeout(() => process.exit(code), 15_000);
    hard.unref();
    try {
      await finish(ctx, why);
    } finally {
      process.exit(code);
    }
  };
  process.on('SIGINT', () => abort('interrupted', 130));
  process.on('SIGTERM', () => abort('terminated', 143));
  setTimeout(() => abort(`hard time bound of ${ctx.opts.maxSeconds} s reached`, 3), ctx.opts.maxSeconds * 1000).unref();
  ctx.abort = abort;
}

const options = parseOptions(process.argv.slice(2));
const context = newContext(options, detectEnvironment(options));
main(context).catch(async (err) => {
  if (stopping) return; // an interrupt or the time bound is already finishing the run
  log(`failed: ${err?.stack ?? err}`);
  await context.abort?.('failed', 1);
  await stopAll();
  process.exit(1);
});
