/**
 * The tensors of a stored file as its format names them, and their bytes read back in blocks.
 * Most formats store each tensor as one segment; a PyTorch file stores storages, and its tensors
 * are views onto them (an offset, and strides). A contiguous view streams straight from the
 * storage's chunks; a non-contiguous one (a transposed tensor saved as is) is gathered from its
 * storage read whole, the one case where memory follows a storage's size.
 */
import { dtypeByName, tensorByteLength } from '../core/dtypes.js';
import { FormatError } from '../core/errors.js';
import type { Manifest, ManifestTensorSegment } from '../core/objects.js';
import { isContiguous } from '../formats/pytorch.js';
import type { ChunkReader } from '../store/chunkReader.js';

export interface LogicalTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** Bytes of the tensor, contiguous. */
  len: number;
  /** The segment holding its bytes. */
  segment: ManifestTensorSegment;
  /** Byte offset of a contiguous view into the segment. */
  offset: number;
  /** Element offset and strides of a non-contiguous view. */
  view?: { storageOffset: number; stride: number[] };
  /** The tensor is its whole segment: its chunk references can be reused as they are. */
  whole: boolean;
  /** The chunk size of the manifest it comes from. */
  chunkSize: number;
}

/** The tensors of one stored file, in the file's order. */
export function logicalTensors(m: Manifest, file: string): LogicalTensor[] {
  const segs = m.segments.filter((s): s is ManifestTensorSegment => s.t === 'tensor');
  const chunkSize = m.chunkSize;
  if (!m.tensors) return segs.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, len: s.len, segment: s, offset: 0, whole: true, chunkSize }));
  const byName = new Map(segs.map((s) => [s.name, s]));
  return m.tensors.map((v) => {
    const seg = byName.get(v.segment);
    const d = dtypeByName(v.dtype);
    const len = d ? tensorByteLength(d, v.shape) : undefined;
    if (!seg || !d || len === undefined) throw new FormatError(m.format, 0, `tensor ${v.name} has no readable storage`, file);
    const el = d.bits / 8;
    const stride = v.stride ?? [];
    const so = v.storageOffset ?? 0;
    if (!v.stride || isContiguous(v.shape, stride)) {
      const offset = so * el;
      return { name: v.name, dtype: v.dtype, shape: v.shape, len, segment: seg, offset, whole: offset === 0 && len === seg.len, chunkSize };
    }
    return { name: v.name, dtype: v.dtype, shape: v.shape, len, segment: seg, offset: 0, view: { storageOffset: so, stride }, whole: false, chunkSize };
  });
}

/** The chunk ids of `seg` covering bytes [from, to), and where `from` falls in the first one. */
function chunkSpan(seg: ManifestTensorSegment, from: number, to: number): { ids: string[]; skip: number } {
  const ids: string[] = [];
  let pos = 0;
  let skip = 0;
  for (const [id, len] of seg.chunks) {
    if (pos + len > from && pos < to) {
      if (ids.length === 0) skip = from - pos;
      ids.push(id);
    }
    pos += len;
    if (pos >= to) break;
  }
  return { ids, skip };
}

/**
 * Read-ahead of one tensor stream: merge reads one stream per input at once, so each keeps a few
 * chunks ahead instead of the reader's default window.
 */
export const STREAM_WINDOW = 4 * 1024 * 1024;

/** The bytes [from, to) of a segment, in the pieces the chunks give (no copy). */
export async function* segmentBytes(reader: ChunkReader, seg: ManifestTensorSegment, from: number, to: number): AsyncGenerator<Uint8Array> {
  if (to <= from) return;
  const { ids, skip } = chunkSpan(seg, from, to);
  let left = to - from;
  let first = true;
  for await (const c of reader.stream(ids, STREAM_WINDOW)) {
    const piece = first ? c.subarray(skip) : c;
    first = false;
    const take = piece.subarray(0, Math.min(piece.length, left));
    left -= take.length;
    yield take;
    if (left === 0) break;
  }
}

async function gather(reader: ChunkReader, t: LogicalTensor): Promise<Uint8Array> {
  const el = dtypeByName(t.dtype)!.bits / 8;
  const storage = new Uint8Array(t.segment.len);
  let pos = 0;
  for await (const b of segmentBytes(reader, t.segment, 0, t.segment.len)) {
    storage.set(b, pos);
    pos += b.length;
  }
  const out = new Uint8Array(t.len);
  const { storageOffset, stride } = t.view!;
  const shape = t.shape;
  const idx = new Array<number>(shape.length).fill(0);
  const n = t.len / el;
  for (let i = 0; i < n; i++) {
    let src = storageOffset;
    for (let d = 0; d < shape.length; d++) src += idx[d] * stride[d];
    out.set(storage.subarray(src * el, src * el + el), i * el);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

/** The tensor's bytes in order, in pieces of any size. */
export async function* tensorBytes(reader: ChunkReader, t: LogicalTensor): AsyncGenerator<Uint8Array> {
  if (t.view) yield await gather(reader, t);
  else yield* segmentBytes(reader, t.segment, t.offset, t.offset + t.len);
}

/** Regroups pieces into blocks of exactly `size` bytes (the last one shorter); each block is a fresh buffer. */
export class BlockReader {
  private readonly it: AsyncGenerator<Uint8Array>;
  private piece: Uint8Array = new Uint8Array(0);
  constructor(source: AsyncGenerator<Uint8Array>) {
    this.it = source;
  }
  /** The next `size` bytes, or fewer at the end. */
  async next(size: number): Promise<Uint8Array> {
    if (this.piece.length === 0) {
      const r = await this.it.next();
      if (r.done) return new Uint8Array(0);
      this.piece = r.value;
    }
    // a block inside one piece (the usual case: blocks and chunks aligned) is a view, not a copy
    if (this.piece.length >= size) {
      const b = this.piece.subarray(0, size);
      this.piece = this.piece.subarray(size);
      return b;
    }
    const out = new Uint8Array(size);
    let pos = 0;
    while (pos < size) {
      if (this.piece.length === 0) {
        const r = await this.it.next();
        if (r.done) return out.subarray(0, pos);
        this.piece = r.value;
      }
      const take = Math.min(size - pos, this.piece.length);
      out.set(this.piece.subarray(0, take), pos);
      this.piece = this.piece.subarray(take);
      pos += take;
    }
    return out;
  }
  async close(): Promise<void> {
    await this.it.return(undefined);
  }
}
