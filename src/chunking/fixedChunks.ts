/**
 * Fixed-size chunks inside a tensor, aligned to the tensor's start: an unchanged tensor dedups
 * whole wherever it sits in the file, a tensor grown by rows keeps its prefix, and a few changed
 * rows cost a few chunks.
 *
 * This is the one place the cut is decided. Commit, diff of a file not committed and merge all
 * cut through it, so a file diffed before it is committed gets the chunk ids commit will give it,
 * and a merged tensor dedups against committed ones.
 */
export interface ChunkSpan {
  /** Position of the chunk in the tensor's chunk list (0 first). */
  index: number;
  /** Where the chunk starts: `start` plus its place in the tensor. */
  offset: number;
  length: number;
}

/**
 * The chunks of a tensor of `length` bytes at `start`, front to back: each `chunkSize` bytes,
 * the last one shorter when `length` is not a multiple. An empty tensor has none. Yielded one at
 * a time, so cutting a tensor of any size takes no memory of its own.
 */
export function* fixedChunks(start: number, length: number, chunkSize: number): Generator<ChunkSpan, void, undefined> {
  // a zero or fractional size would never advance: the store validates it, this keeps it so
  if (!Number.isInteger(chunkSize) || chunkSize <= 0) throw new Error(`internal: chunk size ${chunkSize} is not a positive integer`);
  for (let o = 0, index = 0; o < length; o += chunkSize, index++) yield { index, offset: start + o, length: Math.min(chunkSize, length - o) };
}
