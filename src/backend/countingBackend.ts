/**
 * A transport wrapper that counts the payload bytes crossing it, by key kind. The counts are
 * what push and fetch report and what the acceptance tests hold against a bound, so they are
 * taken at the transport boundary rather than estimated by the caller.
 */
import { promises as fs } from 'node:fs';
import { parseKey, type KeyKind } from './objectKeys.js';
import type { GetToFileOptions, KeyInfo, PutBody, Backend, RangeReader, RefLogEntry, RemoteLock } from './backend.js';

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

  lockShared(purpose: string): Promise<RemoteLock> {
    return this.inner.lockShared(purpose);
  }

  lockExclusive(purpose: string): Promise<RemoteLock> {
    return this.inner.lockExclusive(purpose);
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

  async openRanges(key: string): Promise<RangeReader> {
    this.counts.requests++;
    const reader = await this.inner.openRanges(key);
    return {
      read: async (offset, length) => {
        this.counts.requests++;
        const b = await reader.read(offset, length);
        this.received(key, b.byteLength);
        return b;
      },
      close: () => reader.close(),
    };
  }

  async readFile(key: string): Promise<Uint8Array | undefined> {
    this.counts.requests++;
    const b = await this.inner.readFile(key);
    if (b) this.received(key, b.byteLength);
    return b;
  }

  async writeFile(key: string, bytes: Uint8Array): Promise<void> {
    this.counts.requests++;
    await this.inner.writeFile(key, bytes);
    this.sent(key, bytes.byteLength);
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
