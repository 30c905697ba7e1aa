/**
 * Shared locks that `ckpt serve` holds on a client's behalf. A push over HTTP cannot create a
 * lock file in the server's store itself, so it asks for a lease: the server takes the store's
 * shared lock (storeLocks.ts, the very file a local commit would hold, owned by the server's
 * process) and keeps it while the client renews the lease. gc run on that store, locally or by
 * anyone, waits for it; a lease not renewed in time is released, so a vanished client never
 * blocks gc for long. While gc holds the store, a lease is refused at once (E_LOCKED) and the
 * client asks again, rather than an HTTP request hanging for the length of a gc.
 */
import { randomBytes } from 'node:crypto';
import { CkptError } from '../core/errors.js';
import type { Lock } from '../backend/lockFile.js';
import type { ServedStore } from '../store/servedStore.js';

interface Lease {
  lock: Lock;
  timer: NodeJS.Timeout;
  ttlMs: number;
  /** The store folder the lease locks. */
  store: string;
}

export class StoreLeases {
  private readonly leases = new Map<string, Lease>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxLeases = 256,
  ) {}

  async acquire(store: ServedStore, purpose: string): Promise<{ lease: string; ttlMs: number }> {
    if (this.leases.size >= this.maxLeases) throw new CkptError('E_LOCKED', `too many leases held (${this.maxLeases}); try again later`);
    const lock = await store.lockShared(`${purpose} (lease held by ckpt serve)`);
    const lease = randomBytes(16).toString('hex');
    this.leases.set(lease, { lock, ttlMs: this.ttlMs, store: store.id, timer: this.expireLater(lease) });
    return { lease, ttlMs: this.ttlMs };
  }

  private expireLater(lease: string): NodeJS.Timeout {
    const t = setTimeout(() => void this.release(lease), this.ttlMs);
    t.unref();
    return t;
  }

  /** Extends a lease of this store; false when it is unknown or has expired. */
  renew(lease: string, store: ServedStore): boolean {
    const l = this.leases.get(lease);
    if (!l || l.store !== store.id) return false;
    clearTimeout(l.timer);
    l.timer = this.expireLater(lease);
    return true;
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
