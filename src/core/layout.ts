/**
 * A Layout is what every format parser produces: the file as an ordered list of segments that
 * cover it exactly. `bytes` segments are verbatim framing (headers, zip records, padding);
 * `tensor` segments are raw tensor data, chunked at fixed size so they dedup across versions and
 * across formats.
 */
import { FormatError } from './errors.js';

export interface BytesSegment {
  kind: 'bytes';
  offset: number;
  length: number;
}

export interface TensorSegment {
  kind: 'tensor';
  offset: number;
  length: number;
  name: string;
  dtype: string;
  shape: number[];
}

export type Segment = BytesSegment | TensorSegment;

/** A tensor as the format presents it; several may view one stored segment (tied weights, views). */
export interface TensorView {
  name: string;
  dtype: string;
  shape: number[];
  /** Name of the tensor segment holding the bytes. */
  segment: string;
  /** Element offset into the segment, and strides in elements (PyTorch); absent = contiguous from 0. */
  storageOffset?: number;
  stride?: number[];
}

export interface Layout {
  /** Format name: 'safetensors', 'pytorch', 'npy', 'npz', 'gguf', 'opaque', ... */
  format: string;
  size: number;
  segments: Segment[];
  /** Tensors as the format names them, when they differ from the segments (PyTorch views). */
  tensors?: TensorView[];
  /** Non-tensor content worth showing (safetensors __metadata__, pickled scalars, GGUF keys). */
  info?: Record<string, unknown>;
  /** Findings a user should see (legacy format stored opaque, unsafe globals allowed, ...). */
  warnings?: string[];
}

/** Checks the invariant every parser must keep: segments in order, no gap, no overlap, exact size. */
export function assertLayoutCovers(layout: Layout): void {
  let pos = 0;
  for (const s of layout.segments) {
    if (s.offset !== pos || s.length < 0) {
      throw new FormatError(layout.format, s.offset, `internal: segment at ${s.offset} does not continue at ${pos}`);
    }
    pos += s.length;
  }
  if (pos !== layout.size) {
    throw new FormatError(layout.format, pos, `internal: segments end at ${pos}, file has ${layout.size} bytes`);
  }
}

/** Merges adjacent bytes segments and drops empty ones; keeps empty tensors (they carry a name). */
export function normalizeSegments(segments: Segment[]): Segment[] {
  const out: Segment[] = [];
  for (const s of segments) {
    if (s.kind === 'bytes') {
      if (s.length === 0) continue;
      const last = out[out.length - 1];
      if (last && last.kind === 'bytes') {
        out[out.length - 1] = { kind: 'bytes', offset: last.offset, length: last.length + s.length };
        continue;
      }
    }
    out.push(s);
  }
  return out;
}
