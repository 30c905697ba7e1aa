/**
 * A backend seen through a local cache of its immutable small objects (objectCache.ts): whole
 * reads of index files and metadata objects are served from the cache when it holds them
 * (verified on every read) and kept there when fetched; objects this process writes are kept
 * too. Everything else passes straight through: pack ranges (a checkout transfers the chunks it
 * needs, not whole packs), listings, stats (an object the cache holds may have been deleted by gc
 * since, and a writer must not skip uploading it), refs, HEAD, config, reflogs and locks.
 */
import type { Backend, GetToFileOptions, KeyInfo, PutBody, RangeReader, RefLogEntry, RemoteLock } from './backend.js';
import { UsageError } from '../core/errors.js';
import { isCacheableKey, type ObjectCache } from './objectCache.js';

export class CachingBackend implements Backend {
  constructor(
    readonly inner: Backend,
    readonly cache: ObjectCache,
  ) {}

  get url(): string {
    return this.inner.url;
  }

  list(prefix: string): Promise<KeyInfo[]> {
    return this.inner.list(prefix);
  }

  stat(key: string): Promise<KeyInfo | undefined> {
    return this.inner.stat(key);
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    if (range || !isCacheableKey(key)) return this.inner.get(key, range);
    const hit = await this.cache.read(key);
    if (hit) return hit;
    const bytes = await this.inner.get(key); // a whole-object read: verified by the backend
    await this.cache.write(key, bytes);
    return bytes;
  }

  openRanges(key: string): Promise<RangeReader> {
    const inner = this.inner;
    if (inner.openRanges) return inner.openRanges(key);
    return Promise.resolve({ read: (offset: number, length: number) => inner.get(key, { offset, length }), close: async () => undefined });
  }

  getToFile(key: string, dest: string, opts?: GetToFileOptions): Promise<void> {
    return this.inner.getToFile(key, dest, opts);
  }

  async put(key: string, body: PutBody): Promise<void> {
    await this.inner.put(key, body);
    if ('bytes' in body) await this.cache.write(key, body.bytes);
  }

  async delete(key: string): Promise<void> {
    await this.inner.delete(key);
    await this.cache.forget(key);
  }

  readRef(ref: string): Promise<string | null> {
    return this.inner.readRef(ref);
  }

  casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void> {
    return this.inner.casRef(ref, expected, next, log);
  }

  readFile(key: string): Promise<Uint8Array | undefined> {
    return this.need('readFile').call(this.inner, key);
  }

  writeFile(key: string, bytes: Uint8Array): Promise<void> {
    return this.need('writeFile').call(this.inner, key, bytes);
  }

  lockShared(purpose: string): Promise<RemoteLock> {
    return this.need('lockShared').call(this.inner, purpose);
  }

  lockExclusive(purpose: string): Promise<RemoteLock> {
    return this.need('lockExclusive').call(this.inner, purpose);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }

  /** A method every backend is to have; a driver that still lacks it says so by name. */
  private need<K extends 'readFile' | 'writeFile' | 'lockShared' | 'lockExclusive'>(name: K): NonNullable<Backend[K]> {
    const f = this.inner[name];
    if (!f) throw new UsageError(`the backend of ${this.inner.url} cannot ${name} yet`, { url: this.inner.url });
    return f as NonNullable<Backend[K]>;
  }
}
