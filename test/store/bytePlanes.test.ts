import { describe, expect, it } from 'vitest';
import { joinPlanes, joinUndoZigzag, splitPlanes, undoZigzagDelta, xorInto, zigzagDelta } from '../../src/store/bytePlanes.js';
import { seededRandom as prng } from '../../src/core/seededRandom.js';


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

  it('joins 2- and 4-byte planes of large chunks (the SIMD path) exactly as the definition, odd element counts included', () => {
    const rnd = prng(7);
    for (let t = 0; t < 40; t++) {
      const planes = t % 2 ? 2 : 4;
      const len = 4096 + Math.floor(rnd() * 70000);
      const src = randomBytes(rnd, len);
      const back = joinPlanes(shifted(referenceSplit(src, planes), t % 3), planes);
      expect(Buffer.from(back).equals(Buffer.from(src))).toBe(true);
    }
  });

  it('splits 2- and 4-byte elements of large chunks (the SIMD path) exactly as the definition, odd element counts included', () => {
    const rnd = prng(8);
    for (let t = 0; t < 40; t++) {
      const planes = t % 2 ? 2 : 4;
      const len = 4096 + Math.floor(rnd() * 70000);
      const src = shifted(randomBytes(rnd, len), t % 3);
      expect(Buffer.from(splitPlanes(src, planes)).equals(Buffer.from(referenceSplit(src, planes)))).toBe(true);
    }
  });

  it('joins over its input when asked to, with the same bytes, tail elements included', () => {
    const rnd = prng(9);
    for (let t = 0; t < 24; t++) {
      const planes = t % 2 ? 2 : 4;
      // lengths that leave elements after the last group of 16 and bytes after the last element
      const len = 4096 + Math.floor(rnd() * 9000);
      const src = randomBytes(rnd, len);
      const split = shifted(referenceSplit(src, planes), t % 3);
      const joined = joinPlanes(split.slice(), planes);
      const own = split.slice();
      const inPlace = joinPlanes(own, planes, true);
      expect(Buffer.from(inPlace).equals(Buffer.from(src))).toBe(true);
      expect(Buffer.from(joined).equals(Buffer.from(src))).toBe(true);
      // the SIMD path (these sizes take it) gives back the very buffer it was handed
      expect(inPlace.buffer).toBe(own.buffer);
      const base = randomBytes(rnd, len);
      const planesOfDelta = splitPlanes(zigzagDelta(src, base, planes), planes);
      const back = joinUndoZigzag(planesOfDelta.slice(), base, planes, true);
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

/** The definition over BigInt: little-endian elements, wrapping difference, zigzag; tail XORed. */
function referenceZigzag(cur: Uint8Array, base: Uint8Array, width: number): Uint8Array {
  const bits = BigInt(width * 8);
  const mod = 1n << bits;
  const le = (b: Uint8Array, at: number) => {
    let v = 0n;
    for (let k = width - 1; k >= 0; k--) v = (v << 8n) | BigInt(b[at + k]);
    return v;
  };
  const out = new Uint8Array(cur.length);
  const body = cur.length - (cur.length % width);
  for (let i = 0; i < body; i += width) {
    const d = BigInt.asIntN(width * 8, le(cur, i) - le(base, i));
    let z = ((d << 1n) ^ (d < 0n ? mod - 1n : 0n)) & (mod - 1n);
    for (let k = 0; k < width; k++, z >>= 8n) out[i + k] = Number(z & 0xffn);
  }
  for (let i = body; i < cur.length; i++) out[i] = cur[i] ^ base[i];
  return out;
}

describe('zigzagDelta', () => {
  it('turns a step across a byte boundary into a small number', () => {
    const cur = new Uint8Array(new Uint32Array([0x3f800000, 0x3f7fffff]).buffer);
    const base = new Uint8Array(new Uint32Array([0x3f7fffff, 0x3f800000]).buffer);
    expect([...new Uint32Array(zigzagDelta(cur, base, 4).slice().buffer)]).toEqual([2, 1]);
  });

  it('matches the definition and round-trips for 2, 4 and 8 byte elements, any length and offset', () => {
    const rnd = prng(4);
    for (let t = 0; t < 300; t++) {
      const width = [2, 4, 8][t % 3];
      const len = Math.floor(rnd() * 600);
      const cur = shifted(randomBytes(rnd, len), t % 5);
      // Half the bases are near cur (small differences, borrows), half unrelated.
      const base = shifted(t % 2 ? randomBytes(rnd, len) : cur.map((x, i) => (i % width === 0 ? x + Math.floor(rnd() * 5) - 2 : x)), t % 3);
      const d = zigzagDelta(cur, base, width);
      expect(Buffer.from(d).equals(Buffer.from(referenceZigzag(cur, base, width)))).toBe(true);
      expect(Buffer.from(undoZigzagDelta(shifted(d, t % 7), base, width)).equals(Buffer.from(cur))).toBe(true);
    }
  });

  it('covers the extremes of every width', () => {
    for (const width of [2, 4, 8]) {
      const cur = new Uint8Array(4 * width);
      const base = new Uint8Array(4 * width);
      cur.fill(0xff, 0, width); // -1 - 0
      base.fill(0xff, width, 2 * width); // 0 - (-1)
      cur[3 * width - 1] = 0x80; // most negative - 0
      base[4 * width - 1] = 0x80; // 0 - most negative
      const d = zigzagDelta(cur, base, width);
      expect(Buffer.from(d).equals(Buffer.from(referenceZigzag(cur, base, width)))).toBe(true);
      expect(Buffer.from(undoZigzagDelta(d, base, width)).equals(Buffer.from(cur))).toBe(true);
    }
  });

  it('refuses other widths and a base of another length', () => {
    expect(() => zigzagDelta(new Uint8Array(8), new Uint8Array(8), 3)).toThrow(RangeError);
    expect(() => zigzagDelta(new Uint8Array(8), new Uint8Array(4), 4)).toThrow(RangeError);
  });
});

describe('joinUndoZigzag', () => {
  it('equals joinPlanes then undoZigzagDelta, for every width, length and alignment', () => {
    const rnd = prng(41);
    for (const width of [2, 4, 8]) {
      for (const len of [0, 1, 7, 16, 33, 64, 4096, 4099, 65536 + 6]) {
        for (const [ss, sb] of [[0, 0], [1, 0], [0, 2], [3, 1]]) {
          const cur = randomBytes(rnd, len);
          const base = randomBytes(rnd, len);
          // small steps too, as real deltas are: carries and borrows across bytes
          for (let i = 0; i + 4 <= len; i += 4 * 7) cur.set(base.subarray(i, i + 4), i);
          const planes = splitPlanes(zigzagDelta(cur, base, width), width);
          const expected = undoZigzagDelta(joinPlanes(planes, width), base, width);
          const got = joinUndoZigzag(shifted(planes, ss), shifted(base, sb), width);
          expect(Buffer.from(got).equals(Buffer.from(expected))).toBe(true);
          expect(Buffer.from(got).equals(Buffer.from(cur))).toBe(true);
        }
      }
    }
  });
});
