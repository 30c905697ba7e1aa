/**
 * A backend that fails on purpose, for the retry wrapper's tests: each operation of the inner
 * backend can be made to fail its next N calls, either before it reaches the inner backend (a
 * refused connection) or after it did its work (an answer lost on the way back), with a
 * transient error or any other.
 */
import { CkptError } from '../../src/core/errors.js';
import { transientError, type Backend, type GetToFileOptions, type KeyInfo, type PutBody, type RangeReader, type RefLogEntry, type RemoteLock } from '../../src/backend/backend.js';

export type Op = 'list' | 'stat' | 'get' | 'openRanges' | 'read' | 'getToFile' | 'put' | 'delete' | 'readRef' | 'casRef' | 'readFile' | 'writeFile' | 'lockShared' | 'lockExclusive';

interface Fault {
  count: number;
  when: 'before' | 'after';
  error: () => unknown;
}

export class FaultyBackend implements Backend {
  /** Calls that reached this wrapper, by operation (retries included). */
  readonly calls: Partial<Record<Op, number>> = {};
  private readonly faults = new Map<Op, Fault>();

  constructor(readonly inner: Backend) {}

  get url(): string {
    return this.inner.url;
  }

  /** The next `count` calls of `op` fail (default: a transient error, before reaching the inner backend). */
  fail(op: Op, count: number, opts: { when?: 'before' | 'after'; error?: () => unknown } = {}): this {
    this.faults.set(op, { count, when: opts.when ?? 'before', error: opts.error ?? (() => transientError(this.url, `injected fault in ${op}`)) });
    return this;
  }

  private async run<T>(op: Op, f: () => Promise<T>): Promise<T> {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    const fault = this.faults.get(op);
    if (!fault || fault.count <= 0) return f();
    fault.count--;
    if (fault.when === 'before') throw fault.error();
    await f();
    throw fault.error();
  }

  list(prefix: string): Promise<KeyInfo[]> {
    return this.run('list', () => this.inner.list(prefix));
  }
  stat(key: string): Promise<KeyInfo | undefined> {
    return this.run('stat', () => this.inner.stat(key));
  }
  get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    return this.run('get', () => this.inner.get(key, range));
  }
  async openRanges(key: string): Promise<RangeReader> {
    const r = await this.run('openRanges', () => this.inner.openRanges(key));
    return { read: (o, l) => this.run('read', () => r.read(o, l)), close: () => r.close() };
  }
  getToFile(key: string, dest: string, opts?: GetToFileOptions): Promise<void> {
    return this.run('getToFile', () => this.inner.getToFile(key, dest, opts));
  }
  put(key: string, body: PutBody): Promise<void> {
    return this.run('put', () => this.inner.put(key, body));
  }
  delete(key: string): Promise<void> {
    return this.run('delete', () => this.inner.delete(key));
  }
  readRef(ref: string): Promise<string | null> {
    return this.run('readRef', () => this.inner.readRef(ref));
  }
  casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void> {
    return this.run('casRef', () => this.inner.casRef(ref, expected, next, log));
  }
  readFile(key: string): Promise<Uint8Array | undefined> {
    return this.run('readFile', () => this.inner.readFile(key));
  }
  writeFile(key: string, bytes: Uint8Array): Promise<void> {
    return this.run('writeFile', () => this.inner.writeFile(key, bytes));
  }
  lockShared(purpose: string): Promise<RemoteLock> {
    return this.run('lockShared', () => this.inner.lockShared(purpose));
  }
  lockExclusive(purpose: string): Promise<RemoteLock> {
    return this.run('lockExclusive', () => this.inner.lockExclusive(purpose));
  }
  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}

/** A failure that is not worth another attempt. */
export const permanent = () => new CkptError('E_CORRUPT', 'injected permanent fault');
