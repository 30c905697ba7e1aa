/**
 * Merge's codec pool: worker threads that decode and verify the inputs' chunks and encode the
 * result's, so the main thread only reads, computes and hashes. On two cores the decoding of two
 * inputs and the encoding of the output run beside the arithmetic instead of after it. Replies
 * come back in any order; each request waits for its own.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { CorruptObjectError } from '../core/errors.js';
import type { EncodedChunk, EncodeOptions, CodecId } from '../store/chunkCodec.js';
import type { IndexedChunk } from '../store/chunkIndex.js';
import type { CodecReply, CodecRequest } from './codecWorker.js';

/** A copy that owns its ArrayBuffer (Buffer's slice would be a view). */
const copyOf = (b: Uint8Array): Uint8Array => {
  const c = new Uint8Array(b.byteLength);
  c.set(b);
  return c;
};

type Waiter = { resolve: (r: CodecReply) => void; reject: (e: Error) => void; worker: number };

export class CodecPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly waiting = new Map<number, Waiter>();
  private seq = 0;
  private failed: Error | undefined;

  private constructor(file: string, n: number) {
    for (let i = 0; i < n; i++) {
      const w = new Worker(file);
      w.on('message', (r: CodecReply) => {
        const q = this.waiting.get(r.seq);
        if (!q) return;
        this.waiting.delete(r.seq);
        this.load[q.worker]--;
        q.resolve(r);
      });
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`merge codec worker exited with code ${code}`));
      });
      this.workers.push(w);
      this.load.push(0);
    }
  }

  /** A pool of `n` threads, or undefined where the worker's module is not beside this one (a bundled build). */
  static open(n: number): CodecPool | undefined {
    const file = fileURLToPath(new URL('./codecWorker.js', import.meta.url));
    if (n < 1 || !existsSync(file)) return undefined;
    return new CodecPool(file, n);
  }

  private fail(e: Error): void {
    this.failed ??= e;
    for (const q of this.waiting.values()) q.reject(e);
    this.waiting.clear();
  }

  private call(req: CodecRequest, transfer: Uint8Array[]): Promise<CodecReply> {
    if (this.failed) return Promise.reject(this.failed);
    let worker = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i] < this.load[worker]) worker = i;
    this.load[worker]++;
    return new Promise((resolve, reject) => {
      this.waiting.set(req.seq, { resolve, reject, worker });
      this.workers[worker].postMessage(req, transfer.map((b) => b.buffer as ArrayBuffer));
    });
  }

  /** A stored chunk decoded and verified against its id (ChunkReader's offload). */
  decode = async (rec: IndexedChunk, stored: Uint8Array, base: Uint8Array | undefined): Promise<Uint8Array> => {
    const data = copyOf(stored);
    const b = base ? copyOf(base) : undefined;
    const r = await this.call(
      { seq: this.seq++, op: 'decode', id: rec.id, codec: rec.codec, planes: rec.planes, raw: rec.raw, data, ...(b ? { base: b } : {}) },
      b ? [data, b] : [data],
    );
    if ('error' in r) throw new CorruptObjectError(rec.id, `pack ${rec.pack}`, r.error);
    return (r as { bytes: Uint8Array }).bytes;
  };

  /** encodeChunk in a worker (the Ingestor's encoder); `raw` stays the caller's. */
  encode = async (raw: Uint8Array, opts: EncodeOptions): Promise<EncodedChunk> => {
    const copy = copyOf(raw);
    const o = opts.base ? { ...opts, base: copyOf(opts.base) } : opts;
    const r = await this.call({ seq: this.seq++, op: 'encode', raw: copy, opts: o }, o.base ? [copy, o.base] : [copy]);
    if ('error' in r) throw new Error(r.error);
    const e = r as { codec: number; planes: number; data: Uint8Array };
    return { codec: e.codec as CodecId, planes: e.planes, data: e.data };
  };

  async close(): Promise<void> {
    this.fail(new Error('merge codec pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
