// A private redis-server per test (never the system one on 6379), on a free loopback port.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisHandle {
  url: string; // redis://127.0.0.1:PORT
  port: number;
  /** SIGTERM, then removes the data dir. */
  stop(): Promise<void>;
  /** SIGKILL (a crash); restart() brings it back. */
  kill(): Promise<void>;
  /** Starts again on the same port (stopping it first if it still runs). */
  restart(): Promise<void>;
}

function onPath(cmd: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, cmd), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** False when the runner found no redis-server (KARASU_TEST_NO_REDIS=1) or it is not on PATH. */
export function redisAvailable(): boolean {
  return process.env.KARASU_TEST_NO_REDIS !== '1' && onPath('redis-server');
}

// Children are killed if the test process exits without stopping them.
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});

/** Sends PING over a raw socket; true on +PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function spawnRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  live.add(child);
  child.once('exit', () => live.delete(child));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw Object.assign(new Error(`redis-server on port ${port} exited: ${stderr.trim()}`), { port });
    }
    if (await ping(port)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server on port ${port} did not answer PING within 10 s`);
}

/** Starts a private redis-server, or returns null when Redis tests are to be skipped. */
export async function startRedis(): Promise<RedisHandle | null> {
  if (process.env.KARASU_TEST_NO_REDIS === '1') return null;
  const dir = mkdtempSync(join(tmpdir(), 'karasu-redis-'));
  let child: ChildProcess | undefined;
  let port = 0;
  // freePort() can race with another test taking the port: try a few.
  for (let attempt = 0; !child; attempt++) {
    port = await freePort();
    try {
      child = await spawnRedis(port, dir);
    } catch (err) {
      if (attempt >= 4) throw err;
    }
  }

  const terminate = async (signal: NodeJS.Signals) => {
    if (!child) return;
    const c = child;
    child = undefined;
    c.kill(signal);
    await exited(c);
  };
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await terminate('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    kill: () => terminate('SIGKILL'),
    async restart() {
      await terminate('SIGTERM');
      child = await spawnRedis(port, dir);
    },
  };
}
