/**
 * The metadata objects, as stored (canonical msgpack) and named by objectId(type, bytes).
 * Chunk references are [id, rawLength] pairs so a reader can compute byte ranges without
 * opening anything else.
 */
import type { ObjectId } from './objectId.js';

export type ChunkRef = [id: ObjectId, length: number];

export interface ManifestBytesSegment {
  t: 'bytes';
  len: number;
  chunks: ChunkRef[];
}

export interface ManifestTensorSegment {
  t: 'tensor';
  name: string;
  dtype: string;
  shape: number[];
  len: number;
  /** Plain BLAKE3 of the tensor's bytes, comparable with `b3sum` of the raw tensor. */
  hash: string;
  chunks: ChunkRef[];
  /**
   * Sum of squares of each chunk's finite elements (float64), parallel to `chunks`, for dtypes
   * with element values. Diff takes an unchanged chunk's share of ||A||, ||B|| and A·B from it
   * instead of reading the chunk. Absent in manifests written before it existed, and for
   * quantized dtypes; diff then reads A's copy of such a chunk when it needs the sum.
   */
  sumsq?: number[];
}

export type ManifestSegment = ManifestBytesSegment | ManifestTensorSegment;

export interface Manifest {
  type: 'manifest';
  format: string;
  size: number;
  /** Plain BLAKE3 of the whole file, as `b3sum` prints it. */
  hash: string;
  /** Fixed chunk size used inside tensors. */
  chunkSize: number;
  segments: ManifestSegment[];
  /** Views onto segments when the format names tensors differently (PyTorch). */
  tensors?: { name: string; dtype: string; shape: number[]; segment: string; storageOffset?: number; stride?: number[] }[];
  info?: Record<string, unknown>;
  warnings?: string[];
}

export interface TreeEntry {
  manifest: ObjectId;
  size: number;
  hash: string;
  format: string;
}

export interface Tree {
  type: 'tree';
  /** Relative path (forward slashes) -> entry. */
  files: Record<string, TreeEntry>;
}

export interface CodeProvenance {
  commit?: string;
  branch?: string;
  remote?: string;
  dirty: boolean;
  changed?: string[];
  untracked?: string[];
  /** Id of a tree holding the changed files' contents (with --with-code). */
  files?: ObjectId;
}

export interface CommitMeta {
  step?: number;
  epoch?: number;
  metrics?: Record<string, number>;
  params?: Record<string, string | number | boolean>;
  extra?: Record<string, unknown>;
}

export interface Commit {
  type: 'commit';
  tree: ObjectId;
  parents: ObjectId[];
  message: string;
  author: string;
  /** Milliseconds since the epoch. */
  time: number;
  meta: CommitMeta;
  code?: CodeProvenance;
}

export type MetaObject = Manifest | Tree | Commit;
