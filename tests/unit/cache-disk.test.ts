import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Readable } from 'node:stream';
import { DiskTier, verifyingReadStream } from '../../src/cache/tiers/disk.js';
import { CacheDirInUseError } from '../../src/cache/tiers/disk-lock.js';
import { body, metaFor } from '../fixtures/disk-crash.js';

const MiB = 1024 * 1024;
const CRASH_CHILD = fileURLToPath(new URL('../fixtures/disk-crash.ts', import.meta.url));
const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url)); // where `--import tsx` resolves

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'karasu-disk-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function openTier(dir: string, maxBytes = 64 * MiB, maxItemSize = 16 * MiB): Promise<DiskTier> {
  return DiskTier.open({ dir, maxBytes, maxItemSize, log: { warn() {} } });
}

async function files(dir: string, sub: string, suffix = ''): Promise<string[]> {
  const all = (await readdir(join(dir, sub), { recursive: true })).map(String);
  const out: string[] = [];
  for (const f of all) if (f.endsWith(suffix) && (await stat(join(dir, sub, f))).isFile()) out.push(join(dir, sub, f));
  return out;
}

async function bodyBytesOnDisk(dir: string): Promise<number> {
  let total = 0;
  for (const f of await files(dir, 'entries', '.body')) total += (await stat(f)).size;
  return total;
}

async function collect(stream: Readable): Promise<{ data: Buffer; error: Error | null }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of stream) chunks.push(c as Buffer);
    return { data: Buffer.concat(chunks), error: null };
  } catch (err) {
    return { data: Buffer.concat(chunks), error: err as Error };
  }
}

async function put(tier: DiskTier, key: string, size: number): Promise<Buffer> {
  const data = body(key, size);
  await tier.set(metaFor(key, data), data);
  return data;
}

function runCrashChild(dir: string, mode: string): Promise<NodeJS.Signals | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CRASH_CHILD, dir, mode], { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal));
  });
}

test('set/get round trip: small bodies come back as verified buffers', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    const data = await put(tier, 'b1:small.txt', 1000);
    const hit = await tier.get('b1:small.txt');
    assert.equal(hit?.body.kind, 'buffer');
    assert.deepEqual(hit.body.kind === 'buffer' && hit.body.data, data);
    assert.equal(hit.meta.sha256, metaFor('b1:small.txt', data).sha256);
    assert.equal(await tier.get('b1:missing'), null);
    assert.deepEqual(tier.stats(), { entries: 1, bytes: 1000, maxBytes: 64 * MiB, evictions: 0, corrupt: 0, errors: 0 });
    // Replacing an entry leaves one body file behind, not two.
    await put(tier, 'b1:small.txt', 500);
    assert.equal((await files(dir, 'entries', '.body')).length, 1);
    assert.equal(tier.stats().bytes, 500);
    await tier.close();
  });
});

test('large bodies come back as files; whole and ranged streams', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    const data = await put(tier, 'b1:big.bin', 3 * MiB + 7);
    const hit = await tier.get('b1:big.bin');
    assert.ok(hit && hit.body.kind === 'file');
    const whole = await collect(tier.createReadStream(hit.meta, hit.body.path));
    assert.equal(whole.error, null);
    assert.ok(whole.data.equals(data));
    const part = await collect(tier.createReadStream(hit.meta, hit.body.path, { start: 10, end: 19 }));
    assert.ok(part.data.equals(data.subarray(10, 20)));
    await tier.close();
  });
});

test('bounded by bytes: LRU entries are evicted before a commit, oversized items refused', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir, 1000, 600);
    await put(tier, 'b1:a', 300);
    await put(tier, 'b1:b', 300);
    await put(tier, 'b1:c', 300);
    assert.ok(await tier.get('b1:a')); // a is now the most recently used; b the least
    await put(tier, 'b1:d', 300);
    assert.equal(await tier.get('b1:b'), null);
    for (const k of ['b1:a', 'b1:c', 'b1:d']) assert.ok(await tier.get(k), k);
    assert.equal(tier.stats().evictions, 1);
    assert.equal(tier.stats().bytes, 900);
    assert.ok((await bodyBytesOnDisk(dir)) <= 1000);

    await put(tier, 'b1:big', 601); // over maxItemSize
    assert.equal(await tier.get('b1:big'), null);
    const w = tier.openWriter('b1:big2');
    const big = body('b1:big2', 700);
    await w.write(big.subarray(0, 400));
    await w.write(big.subarray(400)); // goes past maxItemSize: the writer aborts itself
    assert.equal(await w.commit(metaFor('b1:big2', big)), false);
    assert.equal(tier.stats().entries, 3);
    assert.ok((await bodyBytesOnDisk(dir)) <= 1000);
    await tier.close();
    assert.deepEqual(await files(dir, 'tmp'), []);
  });
});

test('concurrent sets never exceed the byte budget', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir, 10_000, 2000);
    await Promise.all(Array.from({ length: 50 }, (_, i) => put(tier, `b1:k${i}`, 500 + (i % 5) * 300)));
    assert.ok(tier.stats().bytes <= 10_000);
    assert.equal(await bodyBytesOnDisk(dir), tier.stats().bytes);
    assert.equal((await files(dir, 'entries', '.meta')).length, tier.stats().entries);
    await tier.close();
  });
});

test('restart keeps entries, restores LRU order from body mtimes, and applies a smaller budget', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    const a = await put(tier, 'b1:a', 400);
    await put(tier, 'b1:b', 400);
    const c = await put(tier, 'b1:c', 2 * MiB);
    await tier.close();
    // b was used longest ago (hits keep the body file's mtime current).
    const now = Date.now() / 1000;
    const bodyOf = async (key: string) => {
      const hash = createHash('sha256').update(key).digest('hex');
      return (await files(dir, 'entries', '.body')).find((f) => f.includes(`${hash}.`))!;
    };
    await utimes(await bodyOf('b1:a'), now, now);
    await utimes(await bodyOf('b1:b'), now - 100, now - 100);
    await utimes(await bodyOf('b1:c'), now - 50, now - 50);

    const again = await openTier(dir, 2 * MiB + 500);
    assert.equal(again.stats().entries, 2);
    assert.equal(again.stats().evictions, 1);
    assert.equal(await again.get('b1:b'), null);
    const hitA = await again.get('b1:a');
    assert.ok(hitA?.body.kind === 'buffer' && hitA.body.data.equals(a));
    const hitC = await again.get('b1:c');
    assert.ok(hitC?.body.kind === 'file');
    assert.ok((await readFile(hitC.body.path)).equals(c));
    await again.close();
  });
});

test('kill -9 mid-write: no partial entry after restart, tmp cleaned', async () => {
  await withDir(async (dir) => {
    assert.equal(await runCrashChild(dir, 'partial'), 'SIGKILL');
    assert.ok((await files(dir, 'tmp')).length > 0, 'the child left its partial tmp file');
    const tier = await openTier(dir);
    assert.equal(await tier.get('b1:b'), null);
    assert.equal(tier.stats().entries, 0);
    assert.deepEqual(await files(dir, 'tmp'), []);
    await tier.close();
  });
});

test('kill -9 after committing A, mid-write of B: A is served intact', async () => {
  await withDir(async (dir) => {
    assert.equal(await runCrashChild(dir, 'a-then-b'), 'SIGKILL');
    const tier = await openTier(dir);
    const hit = await tier.get('b1:a');
    assert.ok(hit?.body.kind === 'buffer' && hit.body.data.equals(body('b1:a', 300_000)));
    assert.equal(await tier.get('b1:b'), null);
    assert.equal(tier.stats().entries, 1);
    assert.deepEqual(await files(dir, 'tmp'), []);
    await tier.close();
  });
});

test('a corrupted small body is dropped on read and counted', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    await put(tier, 'b1:x', 5000);
    const [bodyFile] = await files(dir, 'entries', '.body');
    const fh = await open(bodyFile, 'r+');
    await fh.write(Buffer.from('garbage'), 0, 7, 100);
    await fh.close();
    assert.equal(await tier.get('b1:x'), null);
    assert.equal(await tier.get('b1:x'), null);
    await tier.close(); // waits for the drop to reach the disk
    assert.equal(tier.stats().corrupt, 1);
    assert.equal(tier.stats().entries, 0);
    assert.deepEqual(await files(dir, 'entries', '.body'), []);
    assert.deepEqual(await files(dir, 'entries', '.meta'), []);
  });
});

test('a large body of the wrong size is dropped at get; a corrupt one fails its verifying stream', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    await put(tier, 'b1:short', 2 * MiB);
    const data = await put(tier, 'b1:flip', 2 * MiB);
    const bodies = await files(dir, 'entries', '.body');
    const hitFlip = await tier.get('b1:flip');
    assert.ok(hitFlip?.body.kind === 'file');
    const shortFile = bodies.find((f) => f !== (hitFlip.body.kind === 'file' && hitFlip.body.path))!;
    await truncate(shortFile, MiB);
    assert.equal(await tier.get('b1:short'), null);

    const fh = await open(hitFlip.body.path, 'r+');
    await fh.write(Buffer.from('XXXX'), 0, 4, MiB + 3);
    await fh.close();
    const got = await collect(tier.createReadStream(hitFlip.meta, hitFlip.body.path));
    assert.match(String(got.error?.message), /checksum/);
    assert.ok(got.data.length < data.length, 'the reader never receives the whole corrupt body');
    assert.equal(await tier.get('b1:flip'), null);
    await tier.close();
    assert.equal(tier.stats().corrupt, 2);
    assert.equal(tier.stats().entries, 0);

    // The bare helper: a range read is passed through unverified, a whole read calls back.
    let called = 0;
    const meta = metaFor('b1:flip', data);
    await writeFile(join(dir, 'loose'), data);
    assert.equal((await collect(verifyingReadStream(join(dir, 'loose'), meta, null, () => called++))).error, null);
    data[5] ^= 1;
    await writeFile(join(dir, 'loose'), data);
    assert.ok((await collect(verifyingReadStream(join(dir, 'loose'), meta, null, () => called++))).error);
    assert.equal((await collect(verifyingReadStream(join(dir, 'loose'), meta, { start: 0, end: 9 }))).data.length, 10);
    assert.equal(called, 1);
  });
});

test('writer: commits only when size, sha256 and md5 match; nothing visible otherwise', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    const data = body('b1:w', 3 * MiB);
    const md5 = createHash('md5').update(data).digest('hex');
    const write = async (key: string, bytes: Buffer) => {
      const w = tier.openWriter(key);
      for (let i = 0; i < bytes.length; i += 64 * 1024) await w.write(bytes.subarray(i, i + 64 * 1024));
      return w;
    };

    let w = await write('b1:w', data.subarray(0, data.length - 1)); // ends short
    assert.equal(await w.commit(metaFor('b1:w', data)), false);
    w = await write('b1:w', data);
    assert.equal(await w.commit({ ...metaFor('b1:w', data), sha256: '0'.repeat(64) }), false);
    w = await write('b1:w', data);
    assert.equal(await w.commit(metaFor('b1:w', data), '0'.repeat(32)), false);
    w = await write('b1:w', data.subarray(0, 1000));
    w.abort();
    assert.equal(await w.commit(metaFor('b1:w', data)), false);
    assert.equal(await tier.get('b1:w'), null);
    assert.deepEqual(await files(dir, 'entries', '.body'), []);

    w = await write('b1:w', data);
    assert.equal(await w.commit(metaFor('b1:w', data), `"${md5}"`), true);
    const hit = await tier.get('b1:w');
    assert.ok(hit?.body.kind === 'file' && (await readFile(hit.body.path)).equals(data));
    await tier.close();
    assert.deepEqual(await files(dir, 'tmp'), [], 'every discarded tmp file is gone');
    assert.equal(tier.stats().entries, 1);
  });
});

test('purge by key prefix, bucket and everything; delete', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    for (const k of ['b1:img/1', 'b1:img/2', 'b1:doc/1', 'b2:img/1', 'b2:x']) await put(tier, k, 100);
    assert.equal(await tier.purge({ bucket: 'b1', prefix: 'img/' }), 2);
    assert.equal(await tier.get('b1:img/1'), null);
    assert.ok(await tier.get('b1:doc/1'));
    assert.ok(await tier.get('b2:img/1'));
    assert.equal(await tier.delete('b2:x'), true);
    assert.equal(await tier.delete('b2:x'), false);
    assert.equal(await tier.purge({ bucket: 'b2' }), 1);
    assert.equal(await tier.purge({}), 1);
    assert.deepEqual(tier.stats(), { entries: 0, bytes: 0, maxBytes: 64 * MiB, evictions: 0, corrupt: 0, errors: 0 });
    assert.deepEqual(await files(dir, 'entries', ''), []);
    await tier.close();
  });
});

test('markStale and updateMeta rewrite the meta and survive a restart', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    const data = await put(tier, 'b1:a', 100);
    await put(tier, 'b2:a', 100);
    assert.equal(await tier.markStale({ bucket: 'b1' }), 1);
    assert.equal((await tier.get('b1:a'))?.meta.freshUntil, 0);
    assert.ok((await tier.get('b2:a'))!.meta.freshUntil > 0);
    await tier.updateMeta({ ...metaFor('b2:a', data), etag: '"new"', size: 1 }); // size is the body's, kept
    await tier.updateMeta(metaFor('b9:none', data)); // absent: no-op
    await tier.close();

    const again = await openTier(dir);
    assert.equal((await again.get('b1:a'))?.meta.freshUntil, 0);
    const b2 = await again.get('b2:a');
    assert.equal(b2?.meta.etag, '"new"');
    assert.equal(b2?.meta.size, 100);
    assert.equal(again.stats().entries, 2);
    await again.close();
  });
});

test('start-up deletes tmp files, orphan bodies, and metas that are unreadable or do not match their body', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    for (const k of ['b1:keep', 'b1:nobody', 'b1:wrongsize', 'b1:badjson']) await put(tier, k, 100);
    await tier.close();
    const hashOf = (k: string) => createHash('sha256').update(k).digest('hex');
    const pathsOf = async (k: string) => {
      const sub = join(dir, 'entries', hashOf(k).slice(0, 2));
      const names = (await readdir(sub)).filter((f) => f.startsWith(hashOf(k)));
      return { meta: join(sub, `${hashOf(k)}.meta`), body: join(sub, names.find((f) => f.endsWith('.body'))!) };
    };
    await unlink((await pathsOf('b1:nobody')).body);
    await truncate((await pathsOf('b1:wrongsize')).body, 50);
    await writeFile((await pathsOf('b1:badjson')).meta, '{"v":1,');
    const orphanDir = join(dir, 'entries', 'ab');
    await mkdir(orphanDir, { recursive: true });
    await writeFile(join(orphanDir, `ab${'0'.repeat(62)}.123abc.body`), 'orphan');
    await writeFile(join(dir, 'tmp', 'left-over.body'), 'junk');

    const again = await openTier(dir);
    assert.equal(again.stats().entries, 1);
    assert.ok(await again.get('b1:keep'));
    assert.deepEqual((await files(dir, 'entries', '.meta')).length, 1);
    assert.deepEqual(await files(dir, 'entries', '.body'), [(await pathsOf('b1:keep')).body]);
    assert.deepEqual(await files(dir, 'tmp'), []);
    await again.close();
  });
});

test('an I/O error on read is a miss counted in errors, not a throw', async () => {
  await withDir(async (dir) => {
    const tier = await openTier(dir);
    await put(tier, 'b1:a', 100);
    const [bodyFile] = await files(dir, 'entries', '.body');
    await unlink(bodyFile);
    await mkdir(bodyFile); // readFile → EISDIR
    assert.equal(await tier.get('b1:a'), null);
    assert.equal(tier.stats().errors, 1);
    await tier.close();
  });
});

test('one process per cache_dir: a second tier on the directory is refused until the first closes', async () => {
  await withDir(async (dir) => {
    const first = await openTier(dir);
    await assert.rejects(openTier(dir), (err: Error) => err instanceof CacheDirInUseError && err.message.includes(dir));
    await first.close();
    const second = await openTier(dir);
    await second.close();
    // Opened at the same time: exactly one gets it.
    const both = await Promise.allSettled([openTier(dir), openTier(dir)]);
    assert.deepEqual(both.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    for (const r of both) if (r.status === 'fulfilled') await r.value.close();
  });
});

test('a lock naming another live process, or another host, is refused with the owner and the file named', async () => {
  await withDir(async (dir) => {
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      await writeFile(join(dir, 'karasu.lock'), JSON.stringify({ pid: sleeper.pid, host: hostname() }));
      await assert.rejects(openTier(dir), (err: Error) => err instanceof CacheDirInUseError && err.message.includes(`pid ${sleeper.pid}`) && err.message.includes('karasu.lock'));
    } finally {
      sleeper.kill('SIGKILL');
    }
    await writeFile(join(dir, 'karasu.lock'), JSON.stringify({ pid: process.pid, host: `not-${hostname()}` }));
    await assert.rejects(openTier(dir), (err: Error) => err instanceof CacheDirInUseError && err.message.includes(`on host not-${hostname()}`));
    assert.deepEqual(await readdir(dir), ['karasu.lock'], 'a refused start touches nothing');
  });
});

test('a lock left by a process that is gone (kill -9, a restarted container, a torn write) is taken over', async () => {
  await withDir(async (dir) => {
    const gone = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await new Promise((resolve) => gone.once('exit', resolve));
    const lock = join(dir, 'karasu.lock');
    // A dead pid; this very pid without this process holding the lock (a container's pid 1 restarted); garbage.
    for (const stale of [JSON.stringify({ pid: gone.pid, host: hostname() }), JSON.stringify({ pid: process.pid, host: hostname() }), '{"pid":']) {
      await writeFile(lock, stale);
      const tier = await openTier(dir);
      assert.deepEqual(JSON.parse(await readFile(lock, 'utf8')), { pid: process.pid, host: hostname() });
      await tier.close();
      await assert.rejects(stat(lock), /ENOENT/, 'close releases the lock');
    }
  });
});
