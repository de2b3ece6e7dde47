// The disk tier: one body file and one meta file per entry, an in-memory index rebuilt from disk at
// start-up, LRU eviction by total body bytes.
//
// Layout under `dir`:
//   entries/<hh>/<sha256(key)>.meta             JSON { v, body, meta }: the entry; renaming it into place
//                                               is the atomic switch from the old entry to the new one
//   entries/<hh>/<sha256(key)>.<rand>.body      the body; a fresh name per commit, so a reader holding
//                                               the old file never sees the new bytes
//   tmp/                                        bodies and metas being written; emptied at start-up
// A crash at any point leaves the old entry or the new one plus, at worst, files the next start-up
// deletes (tmp files, bodies no meta names).

import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ByteRange } from '../../http/range.js';
import { lockCacheDir } from './disk-lock.js';
import {
  matchesFilter,
  type CacheHit,
  type CacheMeta,
  type CacheTier,
  type PurgeFilter,
  type TierStats,
  type TierWriter,
} from '../types.js';

export interface DiskTierOptions {
  dir: string;
  maxBytes: number;
  maxItemSize: number;
  log?: { warn(obj: object, msg: string): void };
}

/** Bodies up to this size are read into memory and verified before they are returned. */
const INLINE_MAX = 1024 * 1024;
/** A hit refreshes the body file's mtime (the LRU order after a restart) at most this often. */
const TOUCH_INTERVAL_MS = 60_000;
const SCAN_CONCURRENCY = 64;
/**
 * Bytes per read of a large body: fewer trips through the thread pool than fs's 64 KiB default (a hot
 * 256 MiB read is 4,096 of them), while a slow client still holds at most a few of these in memory.
 */
const READ_CHUNK = 512 * 1024;
const META_VERSION = 1;

interface Entry {
  meta: CacheMeta;
  hash: string;
  /** Body file name inside entries/<hh>/. */
  body: string;
  touchedAt: number;
  /** Found corrupt; stays in the index until the serialized drop runs, but is never served. */
  dead: boolean;
  /**
   * The body's hash is known good in this process: hashed while it was written here, or checked in
   * full once after a restart. Unverified large bodies are checked before their first serve.
   */
  verified: boolean;
}

interface MetaFile {
  v: number;
  body: string;
  meta: CacheMeta;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sha256Hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const rand = (): string => randomBytes(6).toString('hex');
const isNotFound = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === 'ENOENT';

export class DiskTier implements CacheTier {
  readonly name = 'disk' as const;
  readonly maxItemSize: number;
  private readonly maxBytes: number;
  private readonly entriesDir: string;
  private readonly tmpDir: string;
  private readonly log?: DiskTierOptions['log'];
  /** Map order is LRU order: oldest first; a hit re-inserts the key at the end. */
  private readonly index = new Map<string, Entry>();
  private readonly writers = new Set<DiskWriter>();
  private readonly madeDirs = new Set<string>();
  private bytes = 0;
  private evictions = 0;
  private corrupt = 0;
  private errors = 0;
  private closed = false;
  /**
   * Every change to entries/ and to the index runs here, one at a time: meta files are shared per key
   * (the atomic switch), so interleaved commits, drops and purges could otherwise delete each other's.
   * Bodies are written to tmp/ outside it; only renames and unlinks are serialized.
   */
  private chain: Promise<unknown> = Promise.resolve();
  /** Releases `cache_dir` for another process (see disk-lock.ts). */
  private unlock: () => Promise<void> = async () => {};

  private constructor(options: DiskTierOptions) {
    this.maxBytes = options.maxBytes;
    this.maxItemSize = Math.min(options.maxItemSize, options.maxBytes);
    this.entriesDir = join(options.dir, 'entries');
    this.tmpDir = join(options.dir, 'tmp');
    this.log = options.log;
  }

  static async open(options: DiskTierOptions): Promise<DiskTier> {
    const tier = new DiskTier(options);
    await mkdir(options.dir, { recursive: true });
    tier.unlock = await lockCacheDir(options.dir);
    try {
      await rm(tier.tmpDir, { recursive: true, force: true });
      await mkdir(tier.tmpDir, { recursive: true });
      await mkdir(tier.entriesDir, { recursive: true });
      await tier.rebuild();
    } catch (err) {
      await tier.unlock();
      throw err;
    }
    return tier;
  }

  get available(): boolean {
    return !this.closed;
  }

  // ---- reads ----

  async get(key: string): Promise<CacheHit | null> {
    const e = this.index.get(key);
    if (!e || e.dead || this.closed) return null;
    this.index.delete(key);
    this.index.set(key, e);
    this.touch(e);
    const path = this.bodyPath(e);
    const meta = { ...e.meta, headers: { ...e.meta.headers } };
    try {
      if (e.meta.size <= INLINE_MAX) {
        const data = await readFile(path);
        if (data.length !== e.meta.size || createHash('sha256').update(data).digest('hex') !== e.meta.sha256) {
          this.dropCorrupt(e, 'checksum mismatch');
          return null;
        }
        return { meta, body: { kind: 'buffer', data } };
      }
      // Large bodies are hashed as they stream (verifyingReadStream); the size is cheap to check. One
      // found on disk at start-up is hashed in full once first, so a file damaged while Karasu was down
      // is refetched for the very request that finds it rather than cut short.
      const st = await stat(path);
      if (st.size !== e.meta.size) {
        this.dropCorrupt(e, 'size mismatch');
        return null;
      }
      if (!e.verified) {
        if ((await hashFile(path)) !== e.meta.sha256) {
          this.dropCorrupt(e, 'checksum mismatch');
          return null;
        }
        e.verified = true;
      }
      return { meta, body: { kind: 'file', path, open: (range) => this.createReadStream(meta, path, range) } };
    } catch (err) {
      // A commit or purge that replaced the entry meanwhile removed the file: an ordinary miss.
      if (isNotFound(err) && this.index.get(key) !== e) return null;
      if (isNotFound(err)) this.dropCorrupt(e, 'body file missing');
      else this.fail(err, 'disk cache read failed', key);
      return null;
    }
  }

  /**
   * A stream of a `{kind:'file'}` hit's body that drops the entry when the whole-file hash turns out
   * wrong (see verifyingReadStream).
   */
  createReadStream(meta: CacheMeta, path: string, range?: ByteRange | null): Readable {
    return verifyingReadStream(path, meta, range, () => this.reportCorrupt(meta.key, path));
  }

  /** Drops the entry if `path` is still its body: a reader found the file corrupt. */
  reportCorrupt(key: string, path: string): void {
    const e = this.index.get(key);
    if (e && this.bodyPath(e) === path) this.dropCorrupt(e, 'checksum mismatch while streaming');
  }

  // ---- writes ----

  async set(meta: CacheMeta, body: Buffer): Promise<void> {
    if (this.closed || body.length !== meta.size || meta.size > this.maxItemSize) return;
    // A wrong checksum would make every later read "corrupt"; refuse it here instead.
    if (createHash('sha256').update(body).digest('hex') !== meta.sha256) {
      this.log?.warn({ key: meta.key }, 'disk cache: set() with a body that does not match meta.sha256; skipped');
      return;
    }
    const tmp = join(this.tmpDir, `${rand()}.body`);
    try {
      await writeFile(tmp, body);
    } catch (err) {
      this.fail(err, 'disk cache write failed', meta.key);
      await unlink(tmp).catch(() => {});
      return;
    }
    await this.commitFile(meta, tmp);
  }

  openWriter(key: string): TierWriter {
    const writer = new DiskWriter(this, key, join(this.tmpDir, `${rand()}.body`));
    if (this.closed) writer.abort();
    else this.writers.add(writer);
    return writer;
  }

  /** @internal (DiskWriter) Moves a verified body from tmp/ into place and switches the meta to it. Never throws. */
  async commitFile(meta: CacheMeta, tmpBody: string): Promise<boolean> {
    if (this.closed || meta.size > this.maxItemSize) {
      await unlink(tmpBody).catch(() => {});
      return false;
    }
    const hash = sha256Hex(meta.key);
    const dir = join(this.entriesDir, hash.slice(0, 2));
    const body = `${hash}.${rand()}.body`;
    const tmpMeta = join(this.tmpDir, `${rand()}.meta`);
    try {
      await writeFile(tmpMeta, JSON.stringify({ v: META_VERSION, body, meta } satisfies MetaFile));
      if (!this.madeDirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        this.madeDirs.add(dir);
      }
    } catch (err) {
      this.fail(err, 'disk cache write failed', meta.key);
      await Promise.all([unlink(tmpBody).catch(() => {}), unlink(tmpMeta).catch(() => {})]);
      return false;
    }
    return this.serial(async () => {
      const old = this.index.get(meta.key);
      // Make room first, so the bytes on disk never exceed maxBytes (the old body of this key is freed
      // by the switch below, so it counts as room).
      await this.evictFor(meta.size - (old?.meta.size ?? 0), meta.key);
      let bodyPlaced = false;
      try {
        await rename(tmpBody, join(dir, body));
        bodyPlaced = true;
        await rename(tmpMeta, join(dir, `${hash}.meta`));
      } catch (err) {
        this.fail(err, 'disk cache commit failed', meta.key);
        await Promise.all([
          unlink(bodyPlaced ? join(dir, body) : tmpBody).catch(() => {}),
          unlink(tmpMeta).catch(() => {}),
        ]);
        return false;
      }
      if (old) {
        this.index.delete(meta.key);
        this.bytes -= old.meta.size;
        await this.unlinkQuiet(this.bodyPath(old));
      }
      this.index.set(meta.key, { meta, hash, body, touchedAt: Date.now(), dead: false, verified: true });
      this.bytes += meta.size;
      return true;
    });
  }

  async updateMeta(meta: CacheMeta): Promise<void> {
    await this.serial(async () => {
      const e = this.index.get(meta.key);
      if (!e || e.dead) return;
      // The body is kept, so its size and checksum are too, whatever the caller passed.
      await this.rewriteMeta(e, { ...meta, size: e.meta.size, sha256: e.meta.sha256 });
    });
  }

  async delete(key: string): Promise<boolean> {
    return this.serial(async () => {
      const e = this.index.get(key);
      if (!e) return false;
      await this.remove(e);
      return true;
    });
  }

  async purge(filter: PurgeFilter): Promise<number> {
    return this.serial(async () => {
      const victims = [...this.index.values()].filter((e) => matchesFilter(e.meta, filter));
      await mapLimit(victims, SCAN_CONCURRENCY, (e) => this.remove(e));
      return victims.length;
    });
  }

  async markStale(filter: PurgeFilter): Promise<number> {
    return this.serial(async () => {
      const hits = [...this.index.values()].filter((e) => !e.dead && matchesFilter(e.meta, filter));
      await mapLimit(hits, SCAN_CONCURRENCY, (e) => this.rewriteMeta(e, { ...e.meta, freshUntil: 0 }));
      return hits.length;
    });
  }

  stats(): TierStats {
    return {
      entries: this.index.size,
      bytes: this.bytes,
      maxBytes: this.maxBytes,
      evictions: this.evictions,
      corrupt: this.corrupt,
      errors: this.errors,
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.writers].map((w) => w.discard()));
    await this.chain;
    await this.unlock();
  }

  // ---- internals ----

  /** @internal (DiskWriter) */

  forget(writer: DiskWriter): void {
    this.writers.delete(writer);
  }

  /** @internal (DiskWriter) Counts and logs an I/O error. */
  fail(err: unknown, msg: string, key?: string): void {
    this.errors++;
    this.log?.warn({ err, key }, msg);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => {});
    return run;
  }

  private bodyPath(e: Entry): string {
    return join(this.entriesDir, e.hash.slice(0, 2), e.body);
  }

  private metaPath(e: Entry): string {
    return join(this.entriesDir, e.hash.slice(0, 2), `${e.hash}.meta`);
  }

  /** Call inside serial(). Evicts least-recently-used entries until `need` more bytes fit. */
  private async evictFor(need: number, keep: string): Promise<void> {
    for (const e of this.index.values()) {
      if (this.bytes + need <= this.maxBytes) return;
      if (e.meta.key === keep) continue;
      await this.remove(e);
      this.evictions++;
    }
  }

  /** Call inside serial(). Meta first: a crash in between leaves an orphan body, which start-up deletes. */
  private async remove(e: Entry): Promise<void> {
    if (this.index.get(e.meta.key) !== e) return;
    this.index.delete(e.meta.key);
    this.bytes -= e.meta.size;
    await this.unlinkQuiet(this.metaPath(e));
    await this.unlinkQuiet(this.bodyPath(e));
  }

  /** Call inside serial(). */
  private async rewriteMeta(e: Entry, meta: CacheMeta): Promise<void> {
    const tmp = join(this.tmpDir, `${rand()}.meta`);
    try {
      await writeFile(tmp, JSON.stringify({ v: META_VERSION, body: e.body, meta } satisfies MetaFile));
      await rename(tmp, this.metaPath(e));
      e.meta = meta;
    } catch (err) {
      this.fail(err, 'disk cache meta update failed', e.meta.key);
      await unlink(tmp).catch(() => {});
    }
  }

  private dropCorrupt(e: Entry, reason: string): void {
    if (e.dead) return;
    e.dead = true;
    this.corrupt++;
    this.log?.warn({ key: e.meta.key, reason }, 'disk cache: corrupt entry dropped');
    void this.serial(() => this.remove(e));
  }

  private async unlinkQuiet(path: string): Promise<void> {
    try {
      await unlink(path);
    } catch (err) {
      if (!isNotFound(err)) this.fail(err, 'disk cache unlink failed');
    }
  }

  /**
   * Keeps the body file's mtime near the last access so a restart restores the LRU order (the body,
   * not the meta: start-up stats the body anyway, and a meta rewrite is not an access).
   */
  private touch(e: Entry): void {
    const now = Date.now();
    if (now - e.touchedAt < TOUCH_INTERVAL_MS) return;
    e.touchedAt = now;
    const t = now / 1000;
    utimes(this.bodyPath(e), t, t).catch(() => {});
  }

  /** Start-up: index every valid entry, delete everything else, restore LRU order from body mtimes. */
  private async rebuild(): Promise<void> {
    const metas: string[] = [];
    const bodies = new Set<string>();
    const subdirs = (await readdir(this.entriesDir, { withFileTypes: true })).filter(
      (d) => d.isDirectory() && /^[0-9a-f]{2}$/.test(d.name),
    );
    await mapLimit(subdirs, SCAN_CONCURRENCY, async (d) => {
      const dir = join(this.entriesDir, d.name);
      this.madeDirs.add(dir);
      for (const f of await readdir(dir)) {
        if (f.endsWith('.meta')) metas.push(join(dir, f));
        else if (f.endsWith('.body')) bodies.add(join(dir, f));
      }
    });

    const loaded: Entry[] = [];
    const referenced = new Set<string>();
    await mapLimit(metas, SCAN_CONCURRENCY, async (metaPath) => {
      const entry = await this.loadMeta(metaPath, bodies);
      if (!entry) {
        await this.unlinkQuiet(metaPath);
        return;
      }
      referenced.add(this.bodyPath(entry));
      loaded.push(entry);
    });
    await mapLimit([...bodies].filter((b) => !referenced.has(b)), SCAN_CONCURRENCY, (b) => this.unlinkQuiet(b));

    // Newest first, so what does not fit a (possibly smaller) maxBytes is the least recently used.
    loaded.sort((a, b) => b.touchedAt - a.touchedAt);
    const victims: Entry[] = [];
    for (const entry of loaded) {
      if (this.bytes + entry.meta.size > this.maxBytes) victims.push(entry);
      else {
        this.index.set(entry.meta.key, entry);
        this.bytes += entry.meta.size;
      }
    }
    // Map order must be oldest first.
    const kept = [...this.index.values()].reverse();
    this.index.clear();
    for (const entry of kept) this.index.set(entry.meta.key, entry);
    this.evictions += victims.length;
    await mapLimit(victims, SCAN_CONCURRENCY, async (e) => {
      await this.unlinkQuiet(this.metaPath(e));
      await this.unlinkQuiet(this.bodyPath(e));
    });
  }

  private async loadMeta(metaPath: string, bodies: Set<string>): Promise<Entry | null> {
    try {
      const text = await readFile(metaPath, 'utf8');
      const file = JSON.parse(text) as Partial<MetaFile>;
      const meta = file?.meta;
      if (file?.v !== META_VERSION || typeof file.body !== 'string' || !isMeta(meta)) return null;
      const hash = sha256Hex(meta.key);
      const dir = join(this.entriesDir, hash.slice(0, 2));
      // The meta must sit where its key puts it and name a body of the same key next to it.
      if (metaPath !== join(dir, `${hash}.meta`) || !file.body.startsWith(`${hash}.`)) return null;
      if (!bodies.has(join(dir, file.body))) return null; // also rules out any '/' in the name
      if (meta.size > this.maxItemSize) return null;
      const bodyStat = await stat(join(dir, file.body));
      if (bodyStat.size !== meta.size) return null;
      return { meta, hash, body: file.body, touchedAt: bodyStat.mtimeMs, dead: false, verified: false };
    } catch (err) {
      if (!(err instanceof SyntaxError) && !isNotFound(err)) this.fail(err, 'disk cache: reading an entry at start-up failed');
      return null;
    }
  }
}

/** Streams a body into tmp/, hashing as it goes; commit() moves it into place only if it checks out. */
class DiskWriter implements TierWriter {
  readonly path: string;
  private readonly stream: WriteStream;
  private readonly sha256: Hash = createHash('sha256');
  private readonly md5: Hash = createHash('md5');
  private bytes = 0;
  private digested: { sha256: string; md5: string } | null = null;
  private state: 'open' | 'committing' | 'done' | 'failed' = 'open';
  private cleanup: Promise<void> = Promise.resolve();

  constructor(
    private readonly tier: DiskTier,
    private readonly key: string,
    private readonly tmpPath: string,
  ) {
    this.path = tmpPath;
    this.stream = createWriteStream(tmpPath);
    this.stream.on('error', (err) => {
      if (this.state === 'open' || this.state === 'committing') this.tier.fail(err, 'disk cache write failed', key);
      void this.discard();
    });
  }

  write(chunk: Buffer): Promise<void> {
    if (this.state !== 'open') return Promise.resolve();
    this.bytes += chunk.length;
    if (this.bytes > this.tier.maxItemSize) {
      this.abort();
      return Promise.resolve();
    }
    this.sha256.update(chunk);
    this.md5.update(chunk);
    // The write callback runs once the bytes are in the file (readers may tail it), or with the error
    // that also fails the stream: either way the caller must not hang on it.
    return new Promise((resolve) => {
      this.stream.write(chunk, () => resolve());
    });
  }

  async commit(meta: CacheMeta, md5?: string): Promise<boolean> {
    if (this.state !== 'open') {
      await this.cleanup;
      return false;
    }
    this.state = 'committing';
    try {
      this.stream.end();
      await finished(this.stream);
    } catch {
      await this.discard();
      return false;
    }
    const digests = this.digests();
    const ok =
      meta.key === this.key &&
      this.bytes === meta.size &&
      digests.sha256 === meta.sha256 &&
      (md5 === undefined || digests.md5 === md5.replace(/"/g, '').toLowerCase());
    if (!ok) {
      await this.discard();
      return false;
    }
    this.state = 'done';
    this.tier.forget(this);
    return this.tier.commitFile(meta, this.tmpPath);
  }

  digests(): { sha256: string; md5: string } {
    this.digested ??= { sha256: this.sha256.digest('hex'), md5: this.md5.digest('hex') };
    return this.digested;
  }

  abort(): void {
    if (this.state === 'open') void this.discard();
  }

  /** Resolves once the tmp file is gone (commit and the tier's close() wait for it). */
  discard(): Promise<void> {
    if (this.state === 'done') return Promise.resolve();
    if (this.state !== 'failed') {
      this.state = 'failed';
      this.tier.forget(this);
      // Unlink once the stream has closed, so it cannot race the (asynchronous) open that creates the file.
      this.cleanup = (this.stream.closed ? Promise.resolve() : new Promise<void>((r) => this.stream.once('close', () => r())))
        .then(() => unlink(this.tmpPath))
        .catch(() => {});
      this.stream.destroy();
    }
    return this.cleanup;
  }
}

/**
 * Reads a committed body file. A whole-file read hashes as it goes and holds back the last chunk until
 * the SHA-256 and length check out, so a corrupt body never reaches a client complete: the stream
 * errors instead, and `onCorrupt` lets the tier drop the entry. A range read is served as is (it cannot
 * be verified without reading everything).
 */
export function verifyingReadStream(
  path: string,
  meta: Pick<CacheMeta, 'size' | 'sha256'>,
  range?: ByteRange | null,
  onCorrupt?: () => void,
): Readable {
  if (range) return createReadStream(path, { start: range.start, end: range.end, highWaterMark: READ_CHUNK });
  const hash = createHash('sha256');
  let seen = 0;
  let held: Buffer | null = null;
  const verifier = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      seen += chunk.length;
      const out = held;
      held = chunk;
      cb(null, out ?? undefined);
    },
    flush(cb) {
      if (seen !== meta.size || hash.digest('hex') !== meta.sha256) {
        onCorrupt?.();
        cb(new Error(`disk cache: body of ${path} does not match its checksum`));
        return;
      }
      cb(null, held ?? undefined);
    },
  });
  const source = createReadStream(path, { highWaterMark: READ_CHUNK });
  source.on('error', (err) => verifier.destroy(err));
  verifier.on('close', () => source.destroy());
  return source.pipe(verifier);
}

function isMeta(m: unknown): m is CacheMeta {
  const o = m as Record<string, unknown> | null;
  return (
    typeof o === 'object' && o !== null &&
    typeof o.key === 'string' && typeof o.bucket === 'string' && typeof o.objectKey === 'string' &&
    typeof o.headers === 'object' && o.headers !== null &&
    Number.isSafeInteger(o.size) && (o.size as number) >= 0 &&
    typeof o.storedAt === 'number' && typeof o.freshUntil === 'number' &&
    typeof o.sha256 === 'string'
  );
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
