/**
 * Who may use the chunk store at once. Commits (which deduplicate against the index) and reads
 * that need packs to stay put (checkout, fsck) hold a shared lock: a file of their own under
 * `locks/shared/`. gc and prune, which delete packs, hold the exclusive `locks/gc.lock` and sweep
 * only while no shared lock is held.
 *
 * The handshake is two flags, restic-style: a sharer creates its file, then looks for gc.lock and,
 * if it is there, removes its file and waits; gc creates gc.lock, then waits until no live shared
 * file remains. Whichever of the two looks second sees the other, so a sweep never overlaps a
 * commit that could have deduplicated against chunks the sweep removes, and no commit starts in
 * the middle of a sweep. Stale locks (lockFile.ts: a dead or reused pid, or a lease not renewed)
 * are broken; a live lock from another host is never presumed dead.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';
import { acquireLock, breakStale, describeHolder, heldLock, isStale, lockOwner, waitNotifier, type Lock } from './lockFile.js';

export interface StoreLockOptions {
  /** How long to wait for the other side before giving up with E_LOCKED. */
  timeoutMs?: number;
  pollMs?: number;
  /** What the exclusive holder does (gc, prune), recorded in gc.lock. */
  purpose?: string;
}

/** A commit waits for a running gc rather than failing a training run. */
const SHARED_TIMEOUT = 30 * 60_000;
const EXCLUSIVE_TIMEOUT = 10 * 60_000;

export const gcLockFile = (locksDir: string) => path.join(locksDir, 'gc.lock');
export const sharedLockDir = (locksDir: string) => path.join(locksDir, 'shared');

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function acquireShared(locksDir: string, purpose: string, opts: StoreLockOptions = {}): Promise<Lock> {
  const dir = sharedLockDir(locksDir);
  await fs.mkdir(dir, { recursive: true });
  const gc = gcLockFile(locksDir);
  const deadline = Date.now() + (opts.timeoutMs ?? SHARED_TIMEOUT);
  const owner = lockOwner({ purpose });
  const notify = waitNotifier(async () => `gc or prune to finish: ${await describeHolder(gc)}`);
  for (;;) {
    const mine = path.join(dir, `${process.pid}-${randomBytes(6).toString('hex')}.lock`);
    await fs.writeFile(mine, owner, { flag: 'wx' });
    if (!(await exists(gc))) return heldLock(mine, owner);
    await fs.rm(mine, { force: true });
    if (await isStale(gc)) {
      await breakStale(gc);
      continue;
    }
    if (Date.now() > deadline) {
      const holder = await fs.readFile(gc, 'utf8').catch(() => '?');
      throw new CkptError('E_LOCKED', `gc is running on this store (${holder}); try again when it has finished`, { file: gc, holder });
    }
    await notify();
    await sleep(opts.pollMs ?? 100);
  }
}

/** Live shared-lock holders, breaking the stale ones. */
export async function liveSharers(locksDir: string): Promise<string[]> {
  const dir = sharedLockDir(locksDir);
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  const live: string[] = [];
  for (const n of names) {
    if (!n.endsWith('.lock')) continue;
    const f = path.join(dir, n);
    if (await isStale(f)) await breakStale(f);
    else live.push(await fs.readFile(f, 'utf8').catch(() => n));
  }
  return live;
}

/** Takes gc.lock, then waits until no commit or checkout is in progress. */
export async function acquireExclusive(locksDir: string, opts: StoreLockOptions = {}): Promise<Lock> {
  const timeout = opts.timeoutMs ?? EXCLUSIVE_TIMEOUT;
  const deadline = Date.now() + timeout;
  const lock = await acquireLock(gcLockFile(locksDir), timeout, opts.purpose === undefined ? {} : { purpose: opts.purpose });
  try {
    let live: string[] = [];
    const notify = waitNotifier(async () => `${live.length} commit(s) or checkout(s) to finish: ${live.join(', ')}`);
    for (;;) {
      live = await liveSharers(locksDir);
      if (live.length === 0) return lock;
      if (Date.now() > deadline) {
        throw new CkptError('E_LOCKED', `${live.length} commit(s) or checkout(s) still running: ${live.join(', ')}`, { holders: live });
      }
      await notify();
      await sleep(opts.pollMs ?? 50);
    }
  } catch (e) {
    await lock.release();
    throw e;
  }
}
