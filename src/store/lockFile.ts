/**
 * Advisory locks as files created with O_EXCL. A lock whose owner process is gone (same host) is
 * stale and taken over, so a SIGKILLed writer never blocks the store for good.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';

export interface Lock {
  release(): Promise<void>;
}

interface LockOwner {
  pid: number;
  host: string;
  time: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when the lock's owner is gone: a dead process on this host, or a torn file. */
export async function isStale(file: string): Promise<boolean> {
  let owner: LockOwner;
  try {
    owner = JSON.parse(await fs.readFile(file, 'utf8')) as LockOwner;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    // a lock file torn by a crash between create and write: stale once it is a few seconds old
    const st = await fs.stat(file).catch(() => undefined);
    return !st || Date.now() - st.mtimeMs > 5000;
  }
  return owner.host === os.hostname() && !alive(owner.pid);
}

/** A lock this process holds as `file`; releasing it twice is harmless. */
export function heldLock(file: string): Lock {
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      await fs.rm(file, { force: true });
    },
  };
}

/** Removes a stale lock file. Rename is atomic: of two processes breaking it, one wins. */
export async function breakStale(file: string): Promise<void> {
  const grave = `${file}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
  await fs.rename(file, grave).then(
    () => fs.rm(grave, { force: true }),
    () => undefined,
  );
}

/**
 * Takes the lock at `file`, waiting up to `timeoutMs` for a live holder to release it. Throws
 * E_LOCKED naming the holder when it cannot.
 */
export async function acquireLock(file: string, timeoutMs = 10_000): Promise<Lock> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  let wait = 5;
  for (;;) {
    try {
      const h = await fs.open(file, 'wx');
      const owner: LockOwner = { pid: process.pid, host: os.hostname(), time: Date.now() };
      await h.writeFile(JSON.stringify(owner));
      await h.close();
      return heldLock(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (await isStale(file)) {
      await breakStale(file);
      continue;
    }
    if (Date.now() > deadline) {
      const holder = await fs.readFile(file, 'utf8').catch(() => '?');
      throw new CkptError('E_LOCKED', `${file} is locked by another process (${holder})`, { file, holder });
    }
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 100);
  }
}

export async function withLock<T>(file: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const lock = await acquireLock(file, timeoutMs);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
