/**
 * The JavaScript paths of bytePlanes.ts for chunks large enough that the WebAssembly SIMD joins
 * would otherwise take them: a runtime without SIMD must give the same bytes.
 */
import { describe, expect, it } from 'vitest';
import { seededRandom as prng } from '../../src/core/seededRandom.js';

process.env.CKPT_NO_SIMD = '1';
const { joinPlanes, joinUndoZigzag, splitPlanes, undoZigzagDelta, zigzagDelta } = await import('../../src/store/bytePlanes.js');
const { simdJoin } = await import('../../src/store/planesSimd.js');

function randomBytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

describe('byte planes without WebAssembly SIMD', () => {
  it('is switched off by CKPT_NO_SIMD', () => {
    expect(simdJoin()).toBeUndefined();
  });

  it('joins and undoes zigzag deltas of large chunks exactly', () => {
    const rnd = prng(9);
    for (let t = 0; t < 12; t++) {
      const width = [2, 4, 8][t % 3];
      const len = 4096 + Math.floor(rnd() * 40000);
      const cur = randomBytes(rnd, len);
      const base = randomBytes(rnd, len);
      expect(Buffer.from(joinPlanes(splitPlanes(cur, width), width)).equals(Buffer.from(cur))).toBe(true);
      const planes = splitPlanes(zigzagDelta(cur, base, width), width);
      expect(Buffer.from(joinUndoZigzag(planes, base, width)).equals(Buffer.from(cur))).toBe(true);
      expect(Buffer.from(undoZigzagDelta(joinPlanes(planes, width), base, width)).equals(Buffer.from(cur))).toBe(true);
    }
  });
});
