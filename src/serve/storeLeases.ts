/**
 * Store locks that `ckpt serve` holds on a client's behalf. A client over HTTP cannot create a
 * lock file in the server's store itself, so it asks for a lease: the server takes the store's
 * lock (storeLocks.ts, the very files a local commit or gc would hold, owned by the server's
 * process) and keeps it while the client renews the lease. A lease not renewed in time is
 * released, so a vanished client never blocks the store for long.
 *
 * - shared (commit, push, checkout): refused at once (E_LOCKED) while gc holds the store, and the
 *   client asks again, rather than an HTTP request hanging for the length of a gc;
 * - exclusive (gc, prune): gc.lock is taken at once or refused (E_LOCKED); the lease is then
 *   granted once no shared lock is live, and each renewal of a lease not yet granted looks again.
 *   Holding gc.lock meanwhile turns new sharers away, so the wait ends.
 *
 * A renewal also checks the lock file still holds the server's record: a lock broken meanwhile
 * (judged stale by someone) ends the lease, and the client learns it lost the lock.
 */
import { randomBytes } from 'node:crypto';
import { CkptError } from '../core/errors.js';
import type { Lock } from '../backend/lockFile.js';
import type { ServedStore } from '../store/servedStore.js';

export type LeaseMode = 'shared' | 'exclusive';

interface Lease {
  lock: Lock;
  timer: NodeJS.Timeout;
  ttlMs: number;
  /** The store the lease locks (ServedStore.id). */
  store: string;
  mode: LeaseMode;
  granted: boolean;
}

export interface LeaseGrant {
  lease: string;
  ttlMs: number;
  /** Shared leases are granted at once; an exclusive one once no shared lock is live. */
  granted: boolean;
}

export interface LeaseRenewal {
  granted: boolean;
  /** The live shared locks an exclusive lease still waits for. */
  waitingFor?: string[];
}

export class StoreLeases {
  private readonly leases = new Map<string, Lease>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxLeases = 256,
  ) {}

  async acquire(store: ServedStore, purpose: string, mode: LeaseMode = 'shared'): Promise<LeaseGrant> {
    if (this.leases.size >= this.maxLeases) throw new CkptError('E_LOCKED', `too many leases held (${this.maxLeases}); try again later`);
    const held = `${purpose} (lease held by ckpt serve)`;
    const lock = mode === 'shared' ? await store.lockShared(held) : await store.lockGc(held);
    let granted = true;
    if (mode === 'exclusive') {
      try {
        granted = (await store.liveSharers()).length === 0;
      } catch (e) {
        await lock.release();
        throw e;
      }
    }
    const lease = randomBytes(16).toString('hex');
    this.leases.set(lease, { lock, ttlMs: this.ttlMs, store: store.id, mode, granted, timer: this.expireLater(lease) });
    return { lease, ttlMs: this.ttlMs, granted };
  }

  private expireLater(lease: string): NodeJS.Timeout {
    const t = setTimeout(() => void this.release(lease), this.ttlMs);
    t.unref();
    return t;
  }

  /**
   * Extends a lease of this store; undefined when it is unknown, has expired, or its lock was
   * broken meanwhile. An exclusive lease not yet granted looks again for live shared locks.
   */
  async renew(lease: string, store: ServedStore): Promise<LeaseRenewal | undefined> {
    const l = this.leases.get(lease);
    if (!l || l.store !== store.id) return undefined;
    try {
      l.lock.check();
    } catch {
      await this.release(lease);
      return undefined;
    }
    clearTimeout(l.timer);
    l.timer = this.expireLater(lease);
    if (l.granted) return { granted: true };
    const live = await store.liveSharers();
    l.granted = live.length === 0;
    return l.granted ? { granted: true } : { granted: false, waitingFor: live };
  }

  async release(lease: string, store?: ServedStore): Promise<boolean> {
    const l = this.leases.get(lease);
    if (!l || (store !== undefined && l.store !== store.id)) return false;
    this.leases.delete(lease);
    clearTimeout(l.timer);
    await l.lock.release();
    return true;
  }

  async releaseAll(): Promise<void> {
    await Promise.all([...this.leases.keys()].map((id) => this.release(id)));
  }
}
