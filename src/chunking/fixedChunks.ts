/**
 * Fixed-size chunks inside a tensor, aligned to the tensor's start: an unchanged tensor dedups
 * whole wherever it sits in the file, a tensor grown by rows keeps its prefix, and a few changed
 * rows cost a few chunks.
 */
export interface ChunkSpan {
  offset: number;
  length: number;
}

export function fixedChunks(start: number, length: number, chunkSize: number): ChunkSpan[] {
  const out: ChunkSpan[] = [];
  for (let o = 0; o < length; o += chunkSize) out.push({ offset: start + o, length: Math.min(chunkSize, length - o) });
  return out;
}
