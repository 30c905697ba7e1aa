/**
 * A lock that lives only while its holder renews it: a lease `ckpt serve` keeps, a lock object
 * in S3. The holder renews every `everyMs`; a renewal that says the lock is gone (the lease was
 * released, the object was removed by someone who judged it stale) loses it at once, and a lock
 * not renewed within `leaseMs` (renewals that kept failing) is lost too, since the other side
 * may by then judge it lapsed. Once lost, check() throws E_LOCKED: a writer calls it before it
 * publishes, so nothing it does after the loss is made visible.
 */
import { CkptError } from '../core/errors.js';
import type { RemoteLock } from './backend.js';

export interface RenewedLockOptions {
  /** The lock, in words, for messages: "the lease on the store's lock". */
  what: string;
  url: string;
  leaseMs: number;
  everyMs: number;
  /** Renews once: false when the lock is known to be gone; throws on a failure that may pass. */
  renew(): Promise<boolean>;
  /** Gives the lock up (best effort: an unreleased lock lapses on its own). */
  release(): Promise<void>;
  /** When the lock was last known held (default now). */
  since?: number;
}

export function renewedLock(o: RenewedLockOptions): RemoteLock {
  let lastRenewed = o.since ?? Date.now();
  let lost: string | undefined;
  let released = false;
  const lapsed = () => {
    if (!lost && Date.now() - lastRenewed >= o.leaseMs) lost = `not renewed within ${o.leaseMs} ms`;
  };
  const renewOnce = async () => {
    // the other side counts the lease from when it saw the renewal, at the earliest when it was sent
    const started = Date.now();
    try {
      if (await o.renew()) lastRenewed = started;
      else lost ??= 'the other side no longer holds it (it lapsed or was judged stale)';
    } catch {
      // a failure that may pass: the next renewal tries again, until the lease runs out
    }
    lapsed();
  };
  let renewing: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (lost || released) return;
    renewing ??= renewOnce().finally(() => (renewing = undefined));
  }, Math.max(20, o.everyMs));
  timer.unref();
  return {
    check() {
      lapsed();
      if (released) lost ??= 'released';
      if (lost) {
        throw new CkptError('E_LOCKED', `${o.url}: lost ${o.what} (${lost}); nothing more was published, run again`, { url: o.url, reason: lost });
      }
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await renewing;
      await o.release().catch(() => undefined);
    },
  };
}
