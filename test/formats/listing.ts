/**
 * Checks a parsed Layout against the tensor listing the fixture's Python script wrote: the
 * segments rebuild the file exactly and the tensors match by name, dtype, shape and BLAKE3.
 */
import { expect } from 'vitest';
import { blake3Hex } from '../../src/core/blake3.js';
import type { Layout, TensorSegment } from '../../src/core/layout.js';
import { assertLayoutCovers } from '../../src/core/layout.js';

export interface Listed {
  name: string;
  dtype: string;
  shape: number[];
  blake3: string;
}

export function checkAgainstListing(layout: Layout, bytes: Uint8Array, listing: Listed[]): void {
  assertLayoutCovers(layout);
  const joined = Buffer.concat(layout.segments.map((s) => bytes.subarray(s.offset, s.offset + s.length)));
  expect(joined.equals(Buffer.from(bytes))).toBe(true);
  const tensors = layout.segments.filter((s): s is TensorSegment => s.kind === 'tensor');
  expect(
    tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      blake3: blake3Hex(bytes.subarray(t.offset, t.offset + t.length)),
    })),
  ).toEqual(listing);
}
