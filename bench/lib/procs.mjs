// Child processes for the benchmark: start (optionally pinned to a CPU), wait for a port, stop, and make sure
// nothing outlives the run. Every child leads its own process group, so a stop reaches its workers too
// (nginx master + worker); only groups this script started are ever signalled.
import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync, readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';

const children = new Map(); // pid -> { name, child }

export const hasCommand = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Prefix for pinning a command to `cpu` with taskset, or none when pinning is off. */
export const pinArgs = (cpu) => (cpu === null || cpu === undefined ? [] : ['taskset', '-c', String(cpu)]);

/** Re-pins a running child (all its threads) to `cpu`; a no-op when pinning is off. */
export function repin(pid, cpu) {
  if (cpu === null || cpu === undefined) return;
  for (const p of groupPids(pid)) spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(p)], { stdio: 'ignore' });
}

/** Starts `cmd args` with stdout+stderr appended to `logFile`; returns the ChildProcess. */
export function startChild(name, cmd, args, { logFile, env, cpu, cwd } = {}) {
  const fd = openSync(logFile, 'a');
  const argv = [...pinArgs(cpu), cmd, ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd], detached: true, env: env ?? process.env, cwd });
  closeSync(fd);
  children.set(child.pid, { name, child });
  child.on('exit', () => children.delete(child.pid));
  return child;
}

export async function waitForPort(port, child, { timeoutMs = 30_000, logFile } = {}) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited during start${tail(logFile)}`);
    if (await portOpen(port)) return;
    await sleep(100);
  }
  throw new Error(`did not listen on port ${port} within ${timeoutMs / 1000} s${tail(logFile)}`);
}

function tail(logFile) {
  if (!logFile) return '';
  try {
    const lines = readFileSync(logFile, 'utf8').trim().split('\n').slice(-8).join('\n');
    return lines ? `; last log lines (${logFile}):\n${lines}` : '';
  } catch {
    return '';
  }
}

export function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
    s.setTimeout(1000, () => { s.destroy(); resolve(false); });
  });
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** TERM (or `signal`) to the leader, then TERM, then KILL to its group; resolves when the group is gone. */
export async function stopChild(child, { signal = 'SIGTERM', graceMs = 5000 } = {}) {
  if (!child || !children.has(child.pid)) return;
  const pid = child.pid;
  const gone = () => groupPids(pid).length === 0;
  safeKill(pid, signal);
  for (let t = 0; t < graceMs && !gone(); t += 100) await sleep(100);
  if (!gone()) safeKill(-pid, 'SIGTERM');
  for (let t = 0; t < 1000 && !gone(); t += 100) await sleep(100);
  if (!gone()) safeKill(-pid, 'SIGKILL');
  children.delete(pid);
}

/** Synchronous last resort (process 'exit' handler): KILL every group still running. */
export function killAllSync() {
  for (const pid of children.keys()) safeKill(-pid, 'SIGKILL');
  children.clear();
}

export async function stopAll() {
  await Promise.all([...children.values()].reverse().map(({ child }) => stopChild(child, { graceMs: 3000 })));
}

function safeKill(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** Runs a command to completion with a time bound; resolves { code, stdout, stderr, timedOut }. */
export function runBounded(cmd, args, { timeoutMs, cpu, env } = {}) {
  return new Promise((resolve) => {
    const argv = [...pinArgs(cpu), cmd, ...args];
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: env ?? process.env });
    children.set(child.pid, { name: cmd, child });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      safeKill(-child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      children.delete(child.pid);
      resolve({ code, stdout, stderr, timedOut });
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      children.delete(child.pid);
      resolve({ code: -1, stdout, stderr: String(err), timedOut });
    });
  });
}

// ─── /proc readings (Linux; zeros elsewhere) ─────────────────────────────────────────────────────────

function statFields(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' '); // fields from #3 (state) on
}

/** Pids whose process group is `pgid`. */
export function groupPids(pgid) {
  const out = [];
  let entries = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (Number(statFields(e)[2]) === pgid) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/** utime+stime in clock ticks, summed over the process group `pgid`. */
export function groupCpuTicks(pgid) {
  let t = 0;
  for (const p of groupPids(pgid)) {
    try {
      const f = statFields(p);
      t += Number(f[11]) + Number(f[12]);
    } catch {
      /* exited meanwhile */
    }
  }
  return t;
}

/** Busy and total jiffies of one CPU from /proc/stat (busy: user, nice, system, irq, softirq); null when unreadable. */
export function cpuTicks(cpu) {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith(`cpu${cpu} `));
    if (!line) return null;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const busy = user + nice + system + irq + softirq;
    return { busy, total: busy + idle + iowait + (steal || 0) };
  } catch {
    return null;
  }
}

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** VmRSS of one process in KiB (0 when unreadable). */
export function rssKiB(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
