import { describe, expect, it } from 'vitest';
import { joinPlanes, splitPlanes, xorInto } from '../../src/store/bytePlanes.js';

/** mulberry32: a seeded PRNG so every run checks the same cases. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomBytes(rnd: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rnd() * 256);
  return b;
}

/** The definition, one byte at a time. */
function referenceSplit(src: Uint8Array, planes: number): Uint8Array {
  const n = Math.floor(src.length / planes);
  const out = new Uint8Array(src.length);
  for (let i = 0; i < n; i++) for (let k = 0; k < planes; k++) out[k * n + i] = src[i * planes + k];
  for (let j = n * planes; j < src.length; j++) out[j] = src[j];
  return out;
}

/** A view starting `shift` bytes into a larger buffer, to exercise unaligned inputs. */
function shifted(src: Uint8Array, shift: number): Uint8Array {
  const b = new Uint8Array(src.length + shift);
  b.set(src, shift);
  return b.subarray(shift);
}

describe('splitPlanes / joinPlanes', () => {
  it('puts byte k of every element into plane k and keeps the tail verbatim', () => {
    const src = Uint8Array.from([0, 1, 2, 3, 10, 11, 12, 13, 99, 98, 97]);
    expect([...splitPlanes(src, 4)]).toEqual([0, 10, 1, 11, 2, 12, 3, 13, 99, 98, 97]);
    expect([...joinPlanes(splitPlanes(src, 4), 4)]).toEqual([...src]);
    expect([...splitPlanes(Uint8Array.from([1, 2, 3, 4, 5]), 2)]).toEqual([1, 3, 2, 4, 5]);
  });

  it('handles inputs shorter than one element', () => {
    for (const n of [0, 1, 3]) {
      const src = Uint8Array.from({ length: n }, (_, i) => i + 7);
      expect([...splitPlanes(src, 4)]).toEqual([...src]);
      expect([...joinPlanes(src, 4)]).toEqual([...src]);
    }
  });

  it('matches the byte-wise definition and round-trips over many lengths, plane counts and offsets', () => {
    const rnd = prng(1);
    const planeCounts = [1, 2, 3, 4, 5, 8, 16];
    for (let t = 0; t < 400; t++) {
      const planes = planeCounts[t % planeCounts.length];
      // Half the lengths are whole groups of four elements, which take the word-wise path.
      const len = t % 2 ? Math.floor(rnd() * 5000) : planes * 4 * Math.floor(rnd() * 300) + Math.floor(rnd() * planes);
      const src = shifted(randomBytes(rnd, len), t % 4);
      const split = splitPlanes(src, planes);
      expect(Buffer.from(split).equals(Buffer.from(referenceSplit(src, planes)))).toBe(true);
      const back = joinPlanes(shifted(split, (t >> 2) % 4), planes);
      expect(Buffer.from(back).equals(Buffer.from(src))).toBe(true);
    }
  });

  it('does not modify its input', () => {
    const src = randomBytes(prng(2), 4096);
    const copy = src.slice();
    joinPlanes(splitPlanes(src, 4), 4);
    expect(Buffer.from(src).equals(Buffer.from(copy))).toBe(true);
  });

  it('refuses a plane count below one', () => {
    expect(() => splitPlanes(new Uint8Array(8), 0)).toThrow(RangeError);
    expect(() => joinPlanes(new Uint8Array(8), 1.5)).toThrow(RangeError);
  });
});

describe('xorInto', () => {
  it('xors aligned, unaligned and in-place inputs, tails included', () => {
    const rnd = prng(3);
    for (let t = 0; t < 200; t++) {
      const len = Math.floor(rnd() * 1000);
      const a = shifted(randomBytes(rnd, len), t % 4);
      const b = shifted(randomBytes(rnd, len), (t >> 2) % 4);
      const expected = a.map((x, i) => x ^ b[i]);
      const dst = shifted(new Uint8Array(len), t % 4);
      expect(Buffer.from(xorInto(dst, a, b)).equals(Buffer.from(expected))).toBe(true);
      const inPlace = a.slice();
      xorInto(inPlace, inPlace, b);
      expect(Buffer.from(inPlace).equals(Buffer.from(expected))).toBe(true);
    }
  });

  it('stops at the shortest input', () => {
    const dst = new Uint8Array(10).fill(0xee);
    xorInto(dst, new Uint8Array(6).fill(1), new Uint8Array(8).fill(2));
    expect([...dst]).toEqual([3, 3, 3, 3, 3, 3, 0xee, 0xee, 0xee, 0xee]);
  });
});
