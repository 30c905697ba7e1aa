/**
 * Reads chunks back from packs: one positioned read per run of adjacent records, codecs undone,
 * every chunk verified against its id (invariant 4 of docs/architecture.md). Reads and decoding run ahead of the
 * consumer within a bounded window, so memory stays bounded by the window, not the file.
 *
 * Delta bases are decoded once per reader: a bounded cache of decoded bases, keyed by chunk id,
 * serves every later chunk coded against the same base, and concurrent decodes of one base share
 * a single read. A base decoded only to rebuild another chunk is not hashed on its own: the chunk
 * built on it is, and a wrong base cannot give that chunk's id. A base asked for in its own right
 * (`readCached`) is hashed before it is returned.
 */
import { CorruptObjectError, NotFoundError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import type { ChunkIndex, IndexedChunk } from './chunkIndex.js';
import type { Backend, RangeReader } from '../backend/backend.js';
import { packKey } from '../backend/objectKeys.js';
import { decodeChunk } from './chunkCodec.js';

const RUN_BYTES = 8 * 1024 * 1024;
const WINDOW_BYTES = 32 * 1024 * 1024;
/** Decoded delta bases kept for reuse, least recently used dropped first. */
const BASE_CACHE_BYTES = 64 * 1024 * 1024;

/** A decoded chunk and whether it has been hashed against its id yet. */
interface Decoded {
  raw: Uint8Array;
  verified: boolean;
}

export interface ChunkReadStats {
  chunksRead: number;
  bytesRead: number;
}

export class ChunkReader {
  private readonly handles = new Map<ObjectId, Promise<RangeReader>>();
  readonly stats: ChunkReadStats = { chunksRead: 0, bytesRead: 0 };
  /** Decoded bases, in least-recently-used order (a Map iterates in insertion order). */
  private readonly bases = new Map<ObjectId, Decoded>();
  private baseBytes = 0;
  private readonly basesInFlight = new Map<ObjectId, Promise<Decoded>>();

  constructor(
    private readonly backend: Backend,
    private readonly index: ChunkIndex,
  ) {}

  private handle(pack: ObjectId): Promise<RangeReader> {
    let h = this.handles.get(pack);
    if (!h) {
      const key = packKey(pack);
      h = this.backend.openRanges
        ? this.backend.openRanges(key)
        : Promise.resolve({ read: (offset: number, length: number) => this.backend.get(key, { offset, length }), close: async () => undefined });
      h.catch(() => this.handles.delete(pack));
      this.handles.set(pack, h);
    }
    return h;
  }

  private record(id: ObjectId): IndexedChunk {
    const r = this.index.get(id);
    if (!r) throw new NotFoundError(`chunk ${id}`, { id });
    return r;
  }

  private async readStored(pack: ObjectId, offset: number, length: number): Promise<Uint8Array> {
    const h = await this.handle(pack);
    let buf: Uint8Array;
    try {
      buf = await h.read(offset, length);
    } catch (e) {
      if ((e as { code?: string }).code === 'E_REMOTE' && /runs past the end/.test((e as Error).message)) {
        throw new CorruptObjectError(pack, `pack ${pack}`, `pack ends before offset ${offset + length}`);
      }
      throw e;
    }
    this.stats.bytesRead += length;
    return buf;
  }

  private async decode(rec: IndexedChunk, stored: Uint8Array, verify = true): Promise<Uint8Array> {
    const base = rec.base ? (await this.base(rec.base, false)).raw : undefined;
    let raw: Uint8Array;
    try {
      raw = await decodeChunk({ codec: rec.codec as never, planes: rec.planes, data: stored }, rec.raw, base);
    } catch (e) {
      throw new CorruptObjectError(rec.id, `pack ${rec.pack}`, (e as Error).message);
    }
    if (verify) this.verify(rec, raw);
    this.stats.chunksRead++;
    return raw;
  }

  private verify(rec: IndexedChunk, raw: Uint8Array): void {
    if (objectId('chunk', raw) !== rec.id) {
      const detail = rec.base ? `its bytes, or those of a delta base it is built on, do not match its id` : undefined;
      throw new CorruptObjectError(rec.id, `pack ${rec.pack}`, detail);
    }
  }

  /** A chunk (a delta base), decoded at most once while it stays in the cache; verified. */
  async readCached(id: ObjectId): Promise<Uint8Array> {
    return (await this.base(id, true)).raw;
  }

  /** A base from the cache or decoded once, hashed now if `verify` asks and it was not yet. */
  private async base(id: ObjectId, verify: boolean): Promise<Decoded> {
    let d = this.bases.get(id);
    if (d) {
      this.bases.delete(id);
      this.bases.set(id, d);
    } else {
      let p = this.basesInFlight.get(id);
      if (!p) {
        const rec = this.record(id);
        p = this.readStored(rec.pack, rec.offset, rec.stored)
          .then((stored) => this.decode(rec, stored, verify))
          .then(
            (raw) => {
              this.basesInFlight.delete(id);
              return this.remember(id, { raw, verified: verify });
            },
            (e: unknown) => {
              this.basesInFlight.delete(id);
              throw e;
            },
          );
        this.basesInFlight.set(id, p);
      }
      d = await p;
    }
    if (verify && !d.verified) {
      this.verify(this.record(id), d.raw);
      d.verified = true;
    }
    return d;
  }

  private remember(id: ObjectId, d: Decoded): Decoded {
    const had = this.bases.get(id);
    if (had) return had;
    if (d.raw.length > BASE_CACHE_BYTES / 4) return d;
    // a stored-plain chunk is a view into its whole read; keep only its own bytes
    if (d.raw.buffer.byteLength > d.raw.length) d.raw = d.raw.slice();
    this.bases.set(id, d);
    this.baseBytes += d.raw.length;
    for (const [old, b] of this.bases) {
      if (this.baseBytes <= BASE_CACHE_BYTES) break;
      this.bases.delete(old);
      this.baseBytes -= b.raw.length;
    }
    return d;
  }

  /** One chunk, verified. */
  async read(id: ObjectId): Promise<Uint8Array> {
    const rec = this.record(id);
    return this.decode(rec, await this.readStored(rec.pack, rec.offset, rec.stored));
  }

  /**
   * The chunks in order, verified, reading adjacent records together and decoding ahead, up to
   * `windowBytes` (stored plus decoded) at a time: a reader of several streams at once (merge)
   * passes a smaller window.
   */
  async *stream(ids: readonly ObjectId[], windowBytes = WINDOW_BYTES): AsyncGenerator<Uint8Array> {
    // runs and the window are bounded by decoded bytes too: compressed records are small on disk
    // but each decodes to a whole chunk
    type Run = { recs: IndexedChunk[]; bytes: number; raw: number };
    const runs: Run[] = [];
    // a small window reads in small runs too, or one run alone would exceed it
    const runLimit = Math.min(RUN_BYTES, windowBytes);
    for (const id of ids) {
      const rec = this.record(id);
      const last = runs[runs.length - 1];
      const prev = last?.recs[last.recs.length - 1];
      if (
        last &&
        prev &&
        prev.pack === rec.pack &&
        prev.offset + prev.stored === rec.offset &&
        last.bytes + rec.stored <= runLimit &&
        last.raw + rec.raw <= runLimit
      ) {
        last.recs.push(rec);
        last.bytes += rec.stored;
        last.raw += rec.raw;
      } else runs.push({ recs: [rec], bytes: rec.stored, raw: rec.raw });
    }
    const loadRun = async (run: Run): Promise<Promise<Uint8Array>[]> => {
      const first = run.recs[0];
      const buf = await this.readStored(first.pack, first.offset, run.bytes);
      return run.recs.map((r) => {
        const d = this.decode(r, buf.subarray(r.offset - first.offset, r.offset - first.offset + r.stored));
        // a decode that fails while its run waits in the window is reported when it is consumed
        d.catch(() => undefined);
        return d;
      });
    };
    const inflight: { bytes: number; p: Promise<Promise<Uint8Array>[]> }[] = [];
    let inflightBytes = 0;
    let next = 0;
    const fill = () => {
      while (next < runs.length && (inflight.length === 0 || inflightBytes + runs[next].bytes + runs[next].raw <= windowBytes)) {
        const run = runs[next++];
        const p = loadRun(run);
        p.catch(() => undefined);
        inflight.push({ bytes: run.bytes + run.raw, p });
        inflightBytes += run.bytes + run.raw;
      }
    };
    fill();
    while (inflight.length > 0) {
      const head = inflight.shift()!;
      const decoded = await head.p;
      inflightBytes -= head.bytes;
      fill();
      for (const d of decoded) yield await d;
    }
  }

  async close(): Promise<void> {
    for (const h of this.handles.values()) await h.then((x) => x.close()).catch(() => undefined);
    this.handles.clear();
    this.bases.clear();
    this.baseBytes = 0;
  }
}
