/**
 * Builds the manifest of a file that never exists on disk (a merge result), front to back, the way
 * ingest would have stored it: framing cut into content-defined chunks, tensors into fixed chunks
 * from their start, each chunk stored once through the ingest path's chunk sink. Parts taken
 * unchanged from a stored file reuse its chunk references and store nothing; they are read only
 * to hash the whole file, which checkout verifies against.
 */
import { createHasher, type Hasher } from '../core/blake3.js';
import type { ChunkRef, Manifest, ManifestBytesSegment, ManifestSegment, ManifestTensorSegment } from '../core/objects.js';
import { fixedChunks } from '../chunking/fixedChunks.js';
import { CDC_MAX, nextCut } from '../chunking/gearChunker.js';
import { decodedElementBytes } from '../diff/elementDecoder.js';
import { chunkSumSquares } from '../diff/tensorDeltaStats.js';
import type { ChunkSink } from '../repo/ingestFile.js';
import type { ChunkReader } from '../store/chunkReader.js';
import { BlockReader, tensorBytes, type LogicalTensor } from './tensorSource.js';

export interface TensorWriter {
  /**
   * Appends bytes, regrouped into chunks; a block of exactly one chunk is kept as the chunk, so
   * the caller must not reuse it.
   */
  write(bytes: Uint8Array): Promise<void>;
  end(): Promise<void>;
}

export class ManifestBuilder {
  private readonly fileHash: Hasher = createHasher();
  private readonly segments: ManifestSegment[] = [];
  private size = 0;

  constructor(
    private readonly sink: ChunkSink,
    private readonly reader: ChunkReader,
    readonly chunkSize: number,
  ) {}

  private async hashStored(refs: ChunkRef[]): Promise<void> {
    for await (const c of this.reader.stream(refs.map((r) => r[0]))) this.fileHash.update(c);
  }

  /** Framing taken unchanged from a stored file. */
  async reuseBytes(seg: ManifestBytesSegment): Promise<void> {
    await this.hashStored(seg.chunks);
    this.segments.push({ t: 'bytes', len: seg.len, chunks: seg.chunks.slice() });
    this.size += seg.len;
  }

  /** New framing (a header), chunked as ingest chunks framing. */
  async newBytes(data: Uint8Array): Promise<void> {
    this.fileHash.update(data);
    const chunks: ChunkRef[] = [];
    let pos = 0;
    while (pos < data.length) {
      const window = data.subarray(pos, Math.min(data.length, pos + CDC_MAX));
      const n = nextCut(window, 0, pos + window.length === data.length);
      const take = n < 0 ? window.length : n;
      chunks.push(await this.sink.add(data.slice(pos, pos + take), undefined, undefined));
      pos += take;
    }
    this.segments.push({ t: 'bytes', len: data.length, chunks });
    this.size += data.length;
  }

  /** A tensor stored elsewhere with the same chunk size, under a name of this file. */
  private async reuseTensor(seg: ManifestTensorSegment, name = seg.name): Promise<void> {
    await this.hashStored(seg.chunks);
    this.segments.push({ ...seg, name, chunks: seg.chunks.slice(), ...(seg.sumsq ? { sumsq: seg.sumsq.slice() } : {}) });
    this.size += seg.len;
  }

  /**
   * A stored tensor, unchanged, under `name`: by reference to its chunks when it is a whole
   * segment of the same chunking (and looks like the tensor: a storage read by a view of another
   * shape does not), else its bytes read and chunked again.
   */
  async takeTensor(t: LogicalTensor, name: string): Promise<'reused' | 'copied'> {
    const s = t.segment;
    if (t.whole && t.chunkSize === this.chunkSize && s.dtype === t.dtype && s.shape.length === t.shape.length && s.shape.every((d, i) => d === t.shape[i])) {
      await this.reuseTensor(s, name);
      return 'reused';
    }
    const w = this.tensor(name, t.dtype, t.shape, t.len);
    const r = new BlockReader(tensorBytes(this.reader, t));
    try {
      // read a chunk at a time, so each block is stored as it is
      for (const c of fixedChunks(0, t.len, this.chunkSize)) await w.write(await r.next(c.length));
    } finally {
      await r.close();
    }
    await w.end();
    return 'copied';
  }

  /** A tensor whose bytes the caller produces, cut where ingest would cut it. */
  tensor(name: string, dtype: string, shape: number[], len: number): TensorWriter {
    const tensorHash = createHasher();
    const chunks: ChunkRef[] = [];
    const elSize = decodedElementBytes(dtype);
    const sumsq = elSize !== undefined && len % elSize === 0 ? ([] as number[]) : undefined;
    const cuts = fixedChunks(0, len, this.chunkSize);
    let next = cuts.next();
    let pending = new Uint8Array(0);
    let written = 0;
    const emit = async (bytes: Uint8Array) => {
      tensorHash.update(bytes);
      this.fileHash.update(bytes);
      sumsq?.push(chunkSumSquares(bytes, dtype));
      chunks.push(await this.sink.add(bytes, dtype, undefined));
      written += bytes.length;
      next = cuts.next();
    };
    const tooLong = () => new Error(`internal: tensor ${name} got more than its ${len} bytes`);
    return {
      write: async (bytes) => {
        let b = bytes;
        if (pending.length) {
          const joined = new Uint8Array(pending.length + b.length);
          joined.set(pending);
          joined.set(b, pending.length);
          b = joined;
          pending = new Uint8Array(0);
        }
        if (b.length && next.done) throw tooLong();
        // a block of exactly one chunk is the caller's fresh buffer: stored as it is, not copied
        if (!next.done && b.length === next.value.length) {
          await emit(b);
          return;
        }
        let pos = 0;
        while (!next.done && b.length - pos >= next.value.length) {
          const end = pos + next.value.length;
          await emit(b.slice(pos, end));
          pos = end;
        }
        if (pos < b.length && next.done) throw tooLong();
        if (pos < b.length) pending = b.slice(pos);
      },
      end: async () => {
        if (!next.done) throw new Error(`internal: tensor ${name} got ${written + pending.length} of ${len} bytes`);
        this.segments.push({ t: 'tensor', name, dtype, shape, len, hash: tensorHash.hex(), chunks, ...(sumsq ? { sumsq } : {}) });
        this.size += len;
      },
    };
  }

  finish(format: string, extra: Pick<Manifest, 'info' | 'tensors' | 'warnings'> = {}): Manifest {
    return {
      type: 'manifest',
      format,
      size: this.size,
      hash: this.fileHash.hex(),
      chunkSize: this.chunkSize,
      segments: this.segments,
      ...(extra.tensors ? { tensors: extra.tensors } : {}),
      ...(extra.info ? { info: extra.info } : {}),
      ...(extra.warnings?.length ? { warnings: extra.warnings } : {}),
    };
  }
}
