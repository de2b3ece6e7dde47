import { hostname } from 'node:os';
import { join } from 'node:path';
import { open, readFile, unlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * One Karasu process per `cache_dir`: the disk tier's index lives in that process's memory, so a second
 * process on the same directory would evict, purge and rewrite files under the first one's feet.
 * `karasu.lock` in the directory names the owner (pid and host); it is taken with an exclusive create
 * and removed on close. A lock left by a process that no longer runs (kill -9, a crash) is taken over.
 */
const LOCK_FILE = 'karasu.lock';

/** Directories this process holds: a pid check cannot tell two tiers of one process apart. */
const heldHere = new Set<string>();

export class CacheDirInUseError extends Error {
  readonly code = 'KARASU_CACHE_DIR_IN_USE';
}

interface LockOwner {
  pid: number;
  host: string;
}

/** Takes the directory's lock; resolves with its release. Throws CacheDirInUseError when it is taken. */
export async function lockCacheDir(dir: string): Promise<() => Promise<void>> {
  const file = join(dir, LOCK_FILE);
  if (heldHere.has(file)) throw new CacheDirInUseError(`cache.disk.cache_dir ${dir} is already used by another cache in this process`);
  // Claimed before the first await, so two tiers of this process cannot both get past here.
  heldHere.add(file);
  try {
    await takeLock(dir, file);
  } catch (err) {
    heldHere.delete(file);
    throw err;
  }
  return async () => {
    heldHere.delete(file);
    await unlink(file).catch(() => {});
  };
}

async function takeLock(dir: string, file: string): Promise<void> {
  const me: LockOwner = { pid: process.pid, host: hostname() };
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx');
      try {
        await handle.writeFile(JSON.stringify(me) + '\n');
      } finally {
        await handle.close();
      }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
    }
    const owner = await readOwner(file);
    if (owner === null && attempt === 0) {
      // Possibly a lock another process has created but not written yet: look again shortly.
      await sleep(200);
      continue;
    }
    if (owner && ownerRuns(owner, me)) {
      throw new CacheDirInUseError(
        `cache.disk.cache_dir ${dir} is in use by Karasu pid ${owner.pid} on host ${owner.host} (${file}). ` +
          'Give each instance its own cache_dir; if that instance is gone, delete the lock file.',
      );
    }
    // Left behind by a process that is gone: take it over. Of two processes doing this at once, the
    // exclusive create lets one win; the other finds a live owner on its next pass.
    await unlink(file).catch(() => {});
  }
}

async function readOwner(file: string): Promise<LockOwner | null> {
  try {
    const owner = JSON.parse(await readFile(file, 'utf8')) as Partial<LockOwner>;
    return Number.isSafeInteger(owner.pid) && typeof owner.host === 'string' ? (owner as LockOwner) : null;
  } catch {
    return null; // gone meanwhile, or torn by a crash while it was written
  }
}

function ownerRuns(owner: LockOwner, me: LockOwner): boolean {
  // Another host's processes cannot be checked from here: assume it runs (a shared volume).
  if (owner.host !== me.host) return true;
  // Our own pid, and this process does not hold the directory otherwise (checked on entry): a previous
  // run that had the same pid (a container's pid 1).
  if (owner.pid === me.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
