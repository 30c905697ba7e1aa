/**
 * The store's shared and exclusive locks as objects in a bucket, restic-style, for a store that
 * lives in S3 where no process can hold a file open. The handshake is storeLocks.ts's two flags:
 *
 * - shared (commit, push, checkout): create `locks/shared/<32 hex>.lock` with If-None-Match: *,
 *   then look for `locks/gc.lock`; if it is there and live, remove ours, wait and try again;
 * - exclusive (gc, prune): create `locks/gc.lock` with If-None-Match: * (waiting while another
 *   live one exists), then wait until no live shared lock remains.
 *
 * S3 reads its own writes, so whichever side looks second sees the other: a sweep never overlaps
 * a commit. A lock holds {host, pid, time, purpose, id} and is rewritten (If-Match its ETag) every
 * `refreshMs` while held; it is live while its Last-Modified is within `leaseMs` (default 10 min,
 * so clocks that differ by seconds do not matter). A lock not refreshed within its lease is
 * stale: its holder vanished, or is cut off and will learn it on its next refresh, since its
 * If-Match then fails (check() throws, and it publishes nothing more). Stale locks are removed
 * with If-Match, so a lock refreshed meanwhile stays.
 */
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import { CkptError } from '../core/errors.js';
import type { RemoteLock } from './backend.js';
import { LOCK_LEASE_MS, LOCK_RENEW_MS, waitNotifier } from './lockFile.js';
import { renewedLock } from './renewedLock.js';

export interface LockObject {
  key: string;
  etag: string;
  /** Milliseconds since the epoch, by the server's clock. */
  lastModified: number;
}

/** The few conditional operations lock objects need, on keys relative to the store's prefix. */
export interface LockObjectStore {
  /** Creates `key` only if it does not exist: its ETag, or undefined when it exists. */
  create(key: string, body: string): Promise<string | undefined>;
  /** Rewrites `key` only while its ETag is `etag`: the new ETag, or undefined when it changed or is gone. */
  replace(key: string, body: string, etag: string): Promise<string | undefined>;
  read(key: string): Promise<(LockObject & { body: string }) | undefined>;
  list(prefix: string): Promise<LockObject[]>;
  /** Deletes `key` while its ETag is `etag`; nothing when it changed or is gone. */
  remove(key: string, etag: string): Promise<void>;
}

export interface S3LockOptions {
  /** A lock not refreshed for this long is stale; default 10 min. */
  leaseMs?: number;
  /** How often a holder rewrites its lock; default 30 s, at most a third of the lease. */
  refreshMs?: number;
  /** How long lockShared waits for gc (default 30 min) and lockExclusive for commits (default 10 min). */
  waitMs?: number;
  /** Pause between two looks; default 250 ms (a waiting commit goes on soon after gc ends), at most a tenth of the lease. */
  pollMs?: number;
}

export const SHARED_LOCKS = 'locks/shared/';
export const GC_LOCK = 'locks/gc.lock';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Settings {
  leaseMs: number;
  refreshMs: number;
  pollMs: number;
}

function settings(o: S3LockOptions): Settings {
  const leaseMs = o.leaseMs ?? LOCK_LEASE_MS;
  return {
    leaseMs,
    refreshMs: Math.min(o.refreshMs ?? LOCK_RENEW_MS, Math.floor(leaseMs / 3)),
    pollMs: Math.min(o.pollMs ?? 250, Math.max(20, Math.floor(leaseMs / 10))),
  };
}

function record(purpose: string): Record<string, unknown> {
  return { host: os.hostname(), pid: process.pid, time: Date.now(), purpose, id: randomBytes(12).toString('hex') };
}

function describe(body: string | undefined, key: string): string {
  try {
    const o = JSON.parse(body ?? '') as { host?: unknown; pid?: unknown; purpose?: unknown; time?: unknown };
    const age = typeof o.time === 'number' ? ` for ${Math.round((Date.now() - o.time) / 1000)} s` : '';
    return `${key}, held by pid ${String(o.pid)} on ${String(o.host)}${o.purpose ? ` (${String(o.purpose)})` : ''}${age}`;
  } catch {
    return key;
  }
}

const isStale = (o: LockObject, s: Settings) => Date.now() - o.lastModified > s.leaseMs;

/**
 * Creates a lock object of ours. An attempt whose answer was lost may have landed: a create that
 * finds the key taken reads it back, and it is ours when it holds our record.
 */
async function createOwn(store: LockObjectStore, key: string, body: string): Promise<string | undefined> {
  const etag = await store.create(key, body);
  if (etag !== undefined) return etag;
  const now = await store.read(key);
  return now?.body === body ? now.etag : undefined;
}

/** Holds a lock object: rewritten every refreshMs while its ETag is still ours. */
function hold(store: LockObjectStore, url: string, key: string, etag: string, rec: Record<string, unknown>, s: Settings, since: number): RemoteLock {
  let current = etag;
  return renewedLock({
    what: `the store's lock ${key}`,
    url,
    leaseMs: s.leaseMs,
    everyMs: s.refreshMs,
    since,
    renew: async () => {
      const body = JSON.stringify({ ...rec, time: Date.now() });
      let next = await store.replace(key, body, current);
      // a rewrite whose answer was lost and was sent again fails its own If-Match: still ours
      if (next === undefined) {
        const now = await store.read(key);
        if (now?.body === body) next = now.etag;
      }
      if (next === undefined) return false;
      current = next;
      return true;
    },
    release: () => store.remove(key, current),
  });
}

export async function acquireS3Shared(store: LockObjectStore, url: string, purpose: string, o: S3LockOptions = {}): Promise<RemoteLock> {
  const s = settings(o);
  const deadline = Date.now() + (o.waitMs ?? 30 * 60_000);
  let gc: (LockObject & { body: string }) | undefined;
  const notify = waitNotifier(async () => `gc or prune to finish: ${describe(gc?.body, `${url}${GC_LOCK}`)}`);
  for (;;) {
    const key = `${SHARED_LOCKS}${randomBytes(16).toString('hex')}.lock`;
    const rec = record(purpose);
    const since = Date.now();
    const etag = await createOwn(store, key, JSON.stringify(rec));
    if (etag === undefined) throw new CkptError('E_REMOTE', `${url}: could not create the lock ${key}`, { url, key });
    try {
      gc = await store.read(GC_LOCK);
    } catch (e) {
      // a lock left behind would keep gc out for a whole lease
      await store.remove(key, etag).catch(() => undefined);
      throw e;
    }
    if (!gc) return hold(store, url, key, etag, rec, s, since);
    await store.remove(key, etag);
    if (isStale(gc, s)) {
      await store.remove(GC_LOCK, gc.etag);
      continue;
    }
    if (Date.now() > deadline) {
      throw new CkptError('E_LOCKED', `${url}: gc is running on this store (${describe(gc.body, GC_LOCK)}); try again when it has finished`, { url, holder: gc.body });
    }
    await notify();
    await sleep(s.pollMs);
  }
}

export async function acquireS3Exclusive(store: LockObjectStore, url: string, purpose: string, o: S3LockOptions = {}): Promise<RemoteLock> {
  const s = settings(o);
  const deadline = Date.now() + (o.waitMs ?? 10 * 60_000);
  const rec = record(purpose);
  const body = JSON.stringify(rec);
  let etag: string | undefined;
  let since = Date.now();
  let other: (LockObject & { body: string }) | undefined;
  const notifyGc = waitNotifier(async () => `another gc or prune to finish: ${describe(other?.body, GC_LOCK)}`);
  for (;;) {
    since = Date.now();
    etag = await createOwn(store, GC_LOCK, body);
    if (etag !== undefined) break;
    other = await store.read(GC_LOCK);
    if (!other) continue;
    if (isStale(other, s)) {
      await store.remove(GC_LOCK, other.etag);
      continue;
    }
    if (Date.now() > deadline) {
      throw new CkptError('E_LOCKED', `${url}: gc or prune already holds this store (${describe(other.body, GC_LOCK)})`, { url, holder: other.body });
    }
    await notifyGc();
    await sleep(s.pollMs);
  }
  const lock = hold(store, url, GC_LOCK, etag, rec, s, since);
  try {
    let live: LockObject[] = [];
    const notify = waitNotifier(async () => `${live.length} commit(s) or push(es) on ${url} to finish`);
    for (;;) {
      live = [];
      for (const l of await store.list(SHARED_LOCKS)) {
        if (isStale(l, s)) await store.remove(l.key, l.etag);
        else live.push(l);
      }
      if (live.length === 0) {
        lock.check();
        return lock;
      }
      if (Date.now() > deadline) {
        const who = await Promise.all(live.slice(0, 5).map(async (l) => describe((await store.read(l.key).catch(() => undefined))?.body, l.key)));
        throw new CkptError('E_LOCKED', `${url}: ${live.length} commit(s) or push(es) still running: ${who.join(', ')}`, { url, holders: who });
      }
      await notify();
      await sleep(s.pollMs);
    }
  } catch (e) {
    await lock.release();
    throw e;
  }
}
