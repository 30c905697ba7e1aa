/**
 * Advisory locks as files created with O_EXCL. A lock is stale, and taken over, when its owner is
 * gone: a process of this host that no longer runs, or whose pid now belongs to another process
 * (the lock records its owner's start time, and a reused pid starts at another time). An owner on
 * this host is judged by pid and start time alone: a stopped or suspended holder keeps its lock
 * however long it sleeps. Only an owner on another host, whose process cannot be seen from here,
 * loses its lock when it stopped renewing it for longer than its lease (a holder touches its lock
 * while it lives). So a SIGKILLed writer never blocks the store for good, even once its pid is
 * reused. Releasing a lock removes the file only while it still holds the releaser's own record. A wait on a lock is reported, naming what it waits for, every few seconds.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';

export interface Lock {
  release(): Promise<void>;
  /**
   * Throws E_LOCKED unless the lock file still holds this holder's record: someone who judged
   * it stale broke it meanwhile, and what follows is no longer protected.
   */
  check(): void;
}

interface LockOwner {
  pid: number;
  host: string;
  time: number;
  /** The owner's start time (/proc/<pid>/stat field 22, clock ticks after boot), when known. */
  start?: number;
}

/** A holder renews (touches) its lock this often... */
export const LOCK_RENEW_MS = 30_000;
/** ...and a lock of another host's process not renewed for this long is stale. */
export const LOCK_LEASE_MS = 10 * 60_000;
/** How often a wait on a lock is reported. */
export const LOCK_NOTICE_MS = 5_000;

/** The start time of process `pid` on this host, or undefined where /proc cannot say. */
export function processStart(pid: number | 'self'): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // the command name (field 2) is in parentheses and may hold spaces or ')': split after the last
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const start = Number(fields[19]); // field 22 of the whole line
    return Number.isSafeInteger(start) ? start : undefined;
  } catch {
    return undefined;
  }
}

const myStart = processStart('self');

/** The record a lock file holds: who owns it, since when; `extra` adds what it is for. */
export function lockOwner(extra: Record<string, unknown> = {}): string {
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), time: Date.now(), ...(myStart !== undefined ? { start: myStart } : {}) };
  return JSON.stringify({ ...owner, ...extra });
}

type WaitReporter = (message: string) => void;
let reportWait: WaitReporter | undefined;

/** Where waits on locks are reported (the CLI: stderr); undefined: nowhere. */
export function setLockWaitReporter(r: WaitReporter | undefined): void {
  reportWait = r;
}

/** Reports, every LOCK_NOTICE_MS while a wait lasts, what it waits for. */
export function waitNotifier(what: () => Promise<string>): () => Promise<void> {
  const since = Date.now();
  let next = since + LOCK_NOTICE_MS;
  return async () => {
    if (!reportWait || Date.now() < next) return;
    next = Date.now() + LOCK_NOTICE_MS;
    reportWait(`waiting ${Math.round((Date.now() - since) / 1000)} s for ${await what()}`);
  };
}

/** A lock file's owner, in words, for a wait notice or an E_LOCKED error. */
export async function describeHolder(file: string): Promise<string> {
  const text = await fs.readFile(file, 'utf8').catch(() => '');
  try {
    const o = JSON.parse(text) as LockOwner & { purpose?: string };
    const age = Math.round((Date.now() - o.time) / 1000);
    return `${file}, held by pid ${o.pid} on ${o.host}${o.purpose ? ` (${o.purpose})` : ''} for ${age} s`;
  } catch {
    return file;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True when the lock's owner is gone: a dead process on this host, a live one that is not the
 * owner (its start time differs: the pid was reused), another host's lock not renewed within its
 * lease, or a torn file. A lock of this host is never judged by its age.
 */
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
  if (owner.host !== os.hostname()) {
    const st = await fs.stat(file).catch(() => undefined);
    return !st || Date.now() - st.mtimeMs > LOCK_LEASE_MS;
  }
  if (!alive(owner.pid)) return true;
  if (typeof owner.start === 'number') {
    const start = processStart(owner.pid);
    if (start !== undefined && start !== owner.start) return true;
  }
  return false;
}

/**
 * A lock this process holds as `file`, whose content is `record`, renewed while held. Releasing
 * removes the file only while it still holds `record`: a lock broken and taken by another owner
 * meanwhile stays theirs. Releasing twice is harmless.
 */
export function heldLock(file: string, record: string): Lock {
  let released = false;
  const renew = setInterval(() => {
    const now = new Date();
    fs.utimes(file, now, now).catch(() => undefined);
  }, LOCK_RENEW_MS);
  renew.unref();
  return {
    check() {
      let now: string | undefined;
      try {
        now = readFileSync(file, 'utf8');
      } catch {
        now = undefined;
      }
      if (released || now !== record) {
        throw new CkptError('E_LOCKED', `lost the lock ${file}: ${released ? 'released' : 'it was removed or taken over (judged stale?)'}; nothing more was published, run again`, { file });
      }
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(renew);
      const now = await fs.readFile(file, 'utf8').catch(() => undefined);
      if (now === record) await fs.rm(file, { force: true });
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
 * E_LOCKED naming the holder when it cannot. `extra` is added to the lock's record (a purpose).
 */
export async function acquireLock(file: string, timeoutMs = 10_000, extra: Record<string, unknown> = {}): Promise<Lock> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  const notify = waitNotifier(() => describeHolder(file));
  let wait = 5;
  for (;;) {
    try {
      const record = lockOwner(extra);
      const h = await fs.open(file, 'wx');
      await h.writeFile(record);
      await h.close();
      return heldLock(file, record);
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
    await notify();
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
