/**
 * Retry with backoff, once, around any backend (restic's RetryBackend): a driver marks the
 * failures another attempt may not meet (transientError: a cut or refused connection, a 5xx, a
 * stalled answer) and this wrapper tries the operation again, waiting `delayMs` times 4 to the
 * attempt's power (with jitter, so writers that failed together do not retry together), at most
 * `retries` more times. Anything else (a missing key, corrupt bytes, a refusal, a lost race) is
 * passed on at once.
 *
 * Every operation it retries is idempotent: reads; puts of content-addressed objects; deletes;
 * whole-file writes of store files; lock acquisition (a lease or lock object left by an attempt
 * whose answer was lost lapses on its own). A ref update is not, and is retried under one more
 * rule: when a retry finds the ref already at the value it was moving to, an earlier attempt
 * landed and only its answer was lost, so it counts as success (and its reflog line was
 * written by that attempt, once).
 */
import { RefConflictError } from '../core/errors.js';
import { isTransient, type Backend, type GetToFileOptions, type KeyInfo, type PutBody, type RangeReader, type RefLogEntry, type RemoteLock } from './backend.js';

export interface RetryOptions {
  /** Extra attempts after a transient failure; default 2. */
  retries?: number;
  /** First delay before a retry, multiplied by 4 per attempt; default 200 ms. */
  delayMs?: number;
  /** Longest delay between two attempts; default 10 s. */
  maxDelayMs?: number;
  /** Told of each retry (the CLI may print it). */
  onRetry?: (what: string, attempt: number, error: unknown) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class RetryingBackend implements Backend {
  private readonly retries: number;
  private readonly delayMs: number;
  private readonly maxDelayMs: number;

  constructor(
    readonly inner: Backend,
    private readonly options: RetryOptions = {},
  ) {
    this.retries = Math.max(0, options.retries ?? 2);
    this.delayMs = Math.max(0, options.delayMs ?? 200);
    this.maxDelayMs = options.maxDelayMs ?? 10_000;
  }

  get url(): string {
    return this.inner.url;
  }

  /** Runs `op`, again after each transient failure while retries remain. */
  private async retry<T>(what: string, op: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await op(attempt);
      } catch (e) {
        if (attempt >= this.retries || !isTransient(e)) throw e;
        this.options.onRetry?.(what, attempt + 1, e);
        const full = Math.min(this.maxDelayMs, this.delayMs * 4 ** attempt);
        await sleep(full / 2 + (Math.random() * full) / 2);
      }
    }
  }

  list(prefix: string): Promise<KeyInfo[]> {
    return this.retry(`list ${prefix}`, () => this.inner.list(prefix));
  }

  stat(key: string): Promise<KeyInfo | undefined> {
    return this.retry(`stat ${key}`, () => this.inner.stat(key));
  }

  get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    return this.retry(`get ${key}`, () => this.inner.get(key, range));
  }

  async openRanges(key: string): Promise<RangeReader> {
    const reader = await this.retry(`open ${key}`, () => this.inner.openRanges(key));
    return {
      read: (offset, length) => this.retry(`read ${key}`, () => reader.read(offset, length)),
      close: () => reader.close(),
    };
  }

  getToFile(key: string, dest: string, opts?: GetToFileOptions): Promise<void> {
    return this.retry(`download ${key}`, () => this.inner.getToFile(key, dest, opts));
  }

  put(key: string, body: PutBody): Promise<void> {
    return this.retry(`put ${key}`, () => this.inner.put(key, body));
  }

  delete(key: string): Promise<void> {
    return this.retry(`delete ${key}`, () => this.inner.delete(key));
  }

  readRef(ref: string): Promise<string | null> {
    return this.retry(`read ${ref}`, () => this.inner.readRef(ref));
  }

  casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void> {
    return this.retry(`update ${ref}`, async (attempt) => {
      try {
        await this.inner.casRef(ref, expected, next, log);
      } catch (e) {
        // an earlier attempt landed and only its answer was lost
        if (attempt > 0 && e instanceof RefConflictError && ((e.data.actual as string | null) ?? null) === next) return;
        throw e;
      }
    });
  }

  readFile(key: string): Promise<Uint8Array | undefined> {
    return this.retry(`read ${key}`, () => this.inner.readFile(key));
  }

  writeFile(key: string, bytes: Uint8Array): Promise<void> {
    return this.retry(`write ${key}`, () => this.inner.writeFile(key, bytes));
  }

  lockShared(purpose: string): Promise<RemoteLock> {
    return this.retry('take the shared lock', async () => this.wrapLock(await this.inner.lockShared(purpose)));
  }

  lockExclusive(purpose: string): Promise<RemoteLock> {
    return this.retry('take the exclusive lock', async () => this.wrapLock(await this.inner.lockExclusive(purpose)));
  }

  private wrapLock(lock: RemoteLock): RemoteLock {
    return {
      check: () => lock.check(),
      release: () => this.retry('release a lock', () => lock.release()),
    };
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
