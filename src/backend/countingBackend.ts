/**
 * A transport wrapper that counts the payload bytes crossing it, by key kind. The counts are
 * what push and fetch report and what the acceptance tests hold against a bound, so they are
 * taken at the transport boundary rather than estimated by the caller.
 */
import { promises as fs } from 'node:fs';
import { parseKey, type KeyKind } from './objectKeys.js';
import type { GetToFileOptions, KeyInfo, PutBody, Backend, RangeReader, RefLogEntry } from './backend.js';

export interface TransferCounts {
  /** Object and ref bytes uploaded. */
  bytesSent: number;
  /** Object and ref bytes downloaded (whole or ranged). */
  bytesReceived: number;
  sentByKind: Record<KeyKind, number>;
  receivedByKind: Record<KeyKind, number>;
  requests: number;
}

const zero = (): Record<KeyKind, number> => ({ pack: 0, index: 0, meta: 0, ref: 0 });

export class CountingBackend implements Backend {
  readonly counts: TransferCounts = { bytesSent: 0, bytesReceived: 0, sentByKind: zero(), receivedByKind: zero(), requests: 0 };

  constructor(
    readonly inner: Backend,
    /** Called after every counted transfer, e.g. to drive a progress bar. */
    private readonly onChange: (c: TransferCounts) => void = () => undefined,
  ) {}

  get url(): string {
    return this.inner.url;
  }

  /** The inner transport's lock, when it has one. */
  get lockShared(): Backend['lockShared'] {
    const inner = this.inner;
    return inner.lockShared ? (purpose) => inner.lockShared!(purpose) : undefined;
  }

  get lockExclusive(): Backend['lockExclusive'] {
    const inner = this.inner;
    return inner.lockExclusive ? (purpose) => inner.lockExclusive!(purpose) : undefined;
  }

  /** Ranged reads, each counted, when the inner transport has them. */
  get openRanges(): Backend['openRanges'] {
    const inner = this.inner;
    if (!inner.openRanges) return undefined;
    return async (key: string): Promise<RangeReader> => {
      this.counts.requests++;
      const reader = await inner.openRanges!(key);
      return {
        read: async (offset, length) => {
          this.counts.requests++;
          const b = await reader.read(offset, length);
          this.received(key, b.byteLength);
          return b;
        },
        close: () => reader.close(),
      };
    };
  }

  /** The store's small files (config, HEAD, reflogs, marks), counted, when the inner transport serves them. */
  get readFile(): Backend['readFile'] {
    const inner = this.inner;
    if (!inner.readFile) return undefined;
    return async (key: string) => {
      this.counts.requests++;
      const b = await inner.readFile!(key);
      if (b) this.received(key, b.byteLength);
      return b;
    };
  }

  get writeFile(): Backend['writeFile'] {
    const inner = this.inner;
    if (!inner.writeFile) return undefined;
    return async (key: string, bytes: Uint8Array) => {
      this.counts.requests++;
      await inner.writeFile!(key, bytes);
      this.sent(key, bytes.byteLength);
    };
  }

  private sent(key: string, n: number): void {
    const kind = parseKey(key)?.kind ?? 'ref';
    this.counts.bytesSent += n;
    this.counts.sentByKind[kind] += n;
    this.onChange(this.counts);
  }

  private received(key: string, n: number): void {
    const kind = parseKey(key)?.kind ?? 'ref';
    this.counts.bytesReceived += n;
    this.counts.receivedByKind[kind] += n;
    this.onChange(this.counts);
  }

  async list(prefix: string): Promise<KeyInfo[]> {
    this.counts.requests++;
    return this.inner.list(prefix);
  }

  async stat(key: string): Promise<KeyInfo | undefined> {
    this.counts.requests++;
    return this.inner.stat(key);
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    this.counts.requests++;
    const b = await this.inner.get(key, range);
    this.received(key, b.byteLength);
    return b;
  }

  async getToFile(key: string, dest: string, opts?: GetToFileOptions): Promise<void> {
    this.counts.requests++;
    await this.inner.getToFile(key, dest, opts);
    this.received(key, (await fs.stat(dest)).size);
  }

  async put(key: string, body: PutBody): Promise<void> {
    this.counts.requests++;
    const n = 'bytes' in body ? body.bytes.byteLength : (await fs.stat(body.file)).size;
    await this.inner.put(key, body);
    this.sent(key, n);
  }

  async delete(key: string): Promise<void> {
    this.counts.requests++;
    return this.inner.delete(key);
  }

  async readRef(ref: string): Promise<string | null> {
    this.counts.requests++;
    const id = await this.inner.readRef(ref);
    if (id) this.received(ref, id.length + 1);
    return id;
  }

  async casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void> {
    this.counts.requests++;
    await this.inner.casRef(ref, expected, next, log);
    if (next) this.sent(ref, next.length + 1);
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}
