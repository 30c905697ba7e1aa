/**
 * Stores one checkpoint file: parse its layout, read it once front to back, cut tensors into
 * fixed chunks and framing into content-defined chunks, hash every chunk, write only chunks the
 * store lacks (through the codec), and return the manifest. Memory stays bounded by the read-ahead
 * and the encode window, whatever the file size.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createHasher } from '../core/blake3.js';
import { CkptError, FormatError, UnsafePickleError } from '../core/errors.js';
import type { Layout } from '../core/layout.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import type { ChunkRef, Manifest, ManifestSegment } from '../core/objects.js';
import { fixedChunks } from '../chunking/fixedChunks.js';
import { nextCut, CDC_MAX } from '../chunking/gearChunker.js';
import { decodedElementBytes } from '../diff/elementDecoder.js';
import { chunkSumSquares } from '../diff/tensorDeltaStats.js';
import type { DeltaBaseFinder } from './deltaBase.js';
import type { ParseOptions } from '../formats/checkpointFormat.js';
import { parseCheckpoint } from '../formats/formatRegistry.js';
import { CODEC_DELTA, CODEC_ZIGZAG, encodeChunk, type EncodedChunk } from '../store/chunkCodec.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import type { ChunkReader } from '../store/chunkReader.js';
import { openFileSource } from '../store/fileSource.js';
import type { PackWriter } from '../store/packWriter.js';
import { SequentialReader } from '../store/sequentialReader.js';
import type { Store } from '../store/store.js';

/** New chunks being encoded at once: both cores busy with zstd while the main thread hashes. */
const ENCODE_WINDOW = 8;
const HASH_SLICE = 1024 * 1024;

export interface IngestOptions {
  compress: boolean;
}

export interface IngestStats {
  chunks: number;
  newChunks: number;
  newRawBytes: number;
  storedBytes: number;
}

/** Extensions that claim a format with a signature of its own. */
const CLAIMED_BY_NAME: Record<string, string> = { '.safetensors': 'safetensors', '.gguf': 'gguf', '.npy': 'npy', '.npz': 'npz' };
/** Extensions that claim torch's zip format when the file starts like a zip (a local file header). */
const ZIP_CLAIMED_BY_NAME: Record<string, string> = { '.pt': 'pytorch', '.pth': 'pytorch' };

async function startsLikeZip(src: { size: number; read(o: number, n: number): Promise<Uint8Array> }): Promise<boolean> {
  if (src.size < 4) return false;
  const h = await src.read(0, 4);
  return h[0] === 0x50 && h[1] === 0x4b && h[2] === 0x03 && h[3] === 0x04;
}

/** Parses a file's layout, naming the file in any format error. */
export async function readLayout(file: string, options: { format?: string } & ParseOptions = {}): Promise<Layout> {
  const src = await openFileSource(file);
  try {
    const layout = await parseCheckpoint(src, options.format, options);
    const ext = path.extname(file).toLowerCase();
    const claimed = CLAIMED_BY_NAME[ext] ?? (ZIP_CLAIMED_BY_NAME[ext] && (await startsLikeZip(src)) ? ZIP_CLAIMED_BY_NAME[ext] : undefined);
    // A file named like a format whose bytes no parser recognises is a damaged file of that
    // format, not an opaque blob: parsing it as what it claims to be reports the fault (and the
    // offset) instead of storing it silently. `--format opaque` still stores it on purpose.
    if (!options.format && layout.format === 'opaque' && claimed) return await parseCheckpoint(src, claimed, options);
    return layout;
  } catch (e) {
    if (e instanceof FormatError) throw e.inFile(file);
    if (e instanceof UnsafePickleError) throw new UnsafePickleError(e.globals, file);
    throw e;
  } finally {
    await src.close();
  }
}

export interface ChunkSink {
  /** Stores the chunk unless the store has it; returns its reference. */
  add(bytes: Uint8Array, dtype: string | undefined, base: ObjectId | undefined): Promise<ChunkRef>;
  /** Waits until every chunk added is in the pack. */
  drain(): Promise<void>;
  /** Waits for the chunks under way after a failure, ignoring their outcome. */
  settle(): Promise<void>;
}

export class Ingestor {
  readonly stats: IngestStats = { chunks: 0, newChunks: 0, newRawBytes: 0, storedBytes: 0 };
  private readonly seen = new Set<ObjectId>();
  private pack: PackWriter | undefined;
  private readonly packLimit = 128 * 1024 * 1024;
  private baseReader: ChunkReader | undefined;

  constructor(
    private readonly store: Store,
    private readonly options: IngestOptions,
  ) {}

  /**
   * Encodes a new chunk; a delta against `base` only when the base has the same length and the
   * chain through it stays within the configured bound.
   */
  private async encode(index: ChunkIndex, raw: Uint8Array, dtype: string | undefined, base: ObjectId | undefined): Promise<EncodedChunk & { base?: ObjectId }> {
    const cfg = this.store.config.compression;
    if (!this.options.compress || cfg.mode === 'none') return encodeChunk(raw, { mode: 'none' });
    let baseBytes: Uint8Array | undefined;
    const rec = base ? index.get(base) : undefined;
    if (base && rec && rec.raw === raw.length) {
      let depth = 1;
      for (let r = rec; r.base; r = index.get(r.base)!) depth++;
      if (depth <= cfg.maxDeltaChain) {
        this.baseReader ??= await this.store.reader();
        baseBytes = await this.baseReader.read(base);
      }
    }
    const enc = await encodeChunk(raw, { mode: 'auto', dtype, level: cfg.level, base: baseBytes });
    // every delta codec needs its base named in the record, or the chunk cannot be read back
    return enc.codec === CODEC_DELTA || enc.codec === CODEC_ZIGZAG ? { ...enc, base } : enc;
  }

  private async put(id: ObjectId, raw: number, enc: EncodedChunk & { base?: ObjectId }): Promise<void> {
    // files ingested at once put in turns: the pack may have been closed by another's put meanwhile
    const pack = (this.pack ??= this.store.newPackWriter());
    await pack.add({ id, raw, codec: enc.codec, planes: enc.planes, ...(enc.base ? { base: enc.base } : {}) }, enc.data);
    this.stats.storedBytes += enc.data.length;
    if (this.pack === pack && pack.bytes >= this.packLimit) await this.flush();
  }

  /** Closes the current pack, making its chunks durable and indexed. */
  async flush(): Promise<void> {
    const p = this.pack;
    this.pack = undefined;
    if (!p) return;
    const fin = await p.finish();
    if (fin) await this.store.registerPack(fin);
  }

  async close(): Promise<void> {
    await this.baseReader?.close();
    this.baseReader = undefined;
  }

  async abort(): Promise<void> {
    await this.close();
    await this.pack?.abort();
    this.pack = undefined;
  }

  /**
   * Where chunks go: each is hashed, and one the store lacks is encoded (running ahead, within
   * `window` chunks at most) and added to the pack in the order given. Ingest and merge share it.
   */
  sink(index: ChunkIndex, window = ENCODE_WINDOW): ChunkSink {
    const pending: Promise<void>[] = [];
    const drain = async (limit: number) => {
      while (pending.length > limit) await pending.shift();
    };
    return {
      add: async (bytes, dtype, base) => {
        const id = objectId('chunk', bytes);
        this.stats.chunks++;
        if (!index.has(id) && !this.seen.has(id)) {
          this.seen.add(id);
          this.stats.newChunks++;
          this.stats.newRawBytes += bytes.length;
          const enc = this.encode(index, bytes, dtype, base);
          // encoding runs ahead; chunks reach the pack in the order given
          const prev = pending[pending.length - 1] ?? Promise.resolve();
          const p = Promise.all([enc, prev]).then(([e]) => this.put(id, bytes.length, e));
          p.catch(() => undefined);
          pending.push(p);
          await drain(window);
        }
        return [id, bytes.length];
      },
      drain: () => drain(0),
      settle: async () => {
        await Promise.allSettled(pending);
      },
    };
  }

  /**
   * Stores `file` and returns its manifest (not yet written); `deltaBase` says where its chunks
   * find their delta bases (the parent's matching file). Several files may be ingested at once:
   * they share the pack being written and the chunks already seen.
   */
  async ingest(file: string, layout: Layout, onProgress?: (bytes: number) => void, deltaBase?: DeltaBaseFinder): Promise<Manifest> {
    const index = await this.store.index();
    const chunkSize = this.store.config.chunkSize;
    const fh = await fs.open(file, 'r');
    const fileHash = createHasher();
    let done = 0;
    const reader = new SequentialReader(
      fh,
      layout.size,
      (b) => {
        // in slices of a MiB: the native hasher takes a block of 8 MiB at a third of the speed
        for (let o = 0; o < b.length; o += HASH_SLICE) fileHash.update(b.subarray(o, o + HASH_SLICE));
        done += b.length;
        onProgress?.(done);
      },
      file,
    );
    const sink = this.sink(index);
    const addChunk = sink.add;
    try {
      const segments: ManifestSegment[] = [];
      for (const s of layout.segments) {
        const chunks: ChunkRef[] = [];
        if (s.kind === 'tensor') {
          const tensorHash = createHasher();
          // while the chunk is in memory: diff takes unchanged chunks' norms from here, unread
          const elSize = decodedElementBytes(s.dtype);
          const sumsq = elSize !== undefined && s.length % elSize === 0 ? ([] as number[]) : undefined;
          for (const c of fixedChunks(s.offset, s.length, chunkSize)) {
            const bytes = await reader.take(c.length);
            tensorHash.update(bytes);
            sumsq?.push(chunkSumSquares(bytes, s.dtype));
            chunks.push(await addChunk(bytes, s.dtype, deltaBase?.(s.name, s.dtype, s.shape, c.index)));
          }
          segments.push({ t: 'tensor', name: s.name, dtype: s.dtype, shape: s.shape, len: s.length, hash: tensorHash.hex(), chunks, ...(sumsq ? { sumsq } : {}) });
        } else {
          let left = s.length;
          while (left > 0) {
            const window = await reader.peek(Math.min(CDC_MAX, left));
            const n = nextCut(window, 0, window.length === left);
            const bytes = await reader.take(n < 0 ? window.length : n);
            left -= bytes.length;
            chunks.push(await addChunk(bytes, undefined, undefined));
          }
          segments.push({ t: 'bytes', len: s.length, chunks });
        }
      }
      await sink.drain();
      // a file that grew (or was rewritten to another size) while it was read is not one state
      if ((await fh.stat()).size !== layout.size) {
        throw new CkptError('E_IO', `${file} changed size while it was committed (${layout.size} bytes when it was parsed); nothing was stored`, { file });
      }
      const manifest: Manifest = {
        type: 'manifest',
        format: layout.format,
        size: layout.size,
        hash: fileHash.hex(),
        chunkSize,
        segments,
      };
      if (layout.tensors) manifest.tensors = layout.tensors;
      if (layout.info) manifest.info = layout.info;
      if (layout.warnings?.length) manifest.warnings = layout.warnings;
      return manifest;
    } catch (e) {
      await sink.settle();
      throw e;
    } finally {
      await fh.close();
    }
  }
}
