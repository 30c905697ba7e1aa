/**
 * Rounding float64 results to each float dtype: once, to nearest, ties to even, checked against a
 * brute-force search over every finite value of the dtype (the decode tables), on values between
 * and exactly halfway between neighbours, on overflow and on NaN.
 */
import { describe, expect, it } from 'vitest';
import { decodeTable } from '../../src/diff/elementDecoder.js';
import { encodeFloats } from '../../src/merge/dtypeRounding.js';
import { prng } from '../e2e/helpers.js';

/**
 * The nearest finite value's pattern by a search over every value of the dtype (sorted once), the
 * even pattern on a tie; zeros of the wrong sign are skipped where the dtype has a -0.
 */
function nearestOf(table: Float64Array): (x: number) => number {
  const hasNegZero = [...table].some((v) => Object.is(v, -0));
  const all = [...table.keys()].filter((b) => Number.isFinite(table[b])).sort((a, b) => table[a] - table[b]);
  return (x) => {
    const neg = x < 0 || Object.is(x, -0);
    let lo = 0;
    let hi = all.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (table[all[mid]] <= x) lo = mid;
      else hi = mid;
    }
    let best = -1;
    let bestErr = Infinity;
    for (let k = Math.max(0, lo - 2); k <= Math.min(all.length - 1, hi + 2); k++) {
      const b = all[k];
      const v = table[b];
      if (v === 0 && hasNegZero && Object.is(v, -0) !== neg) continue;
      const err = Math.abs(v - x);
      if (err < bestErr || (err === bestErr && (b & 1) === 0 && (best & 1) === 1)) {
        best = b;
        bestErr = err;
      }
    }
    return best;
  };
}

describe('rounding to float dtypes', () => {
  for (const dtype of ['F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ']) {
    it(`${dtype}: nearest, ties to even, against a search over every value`, () => {
      const table = decodeTable(dtype);
      const width = table.length === 65536 ? 2 : 1;
      const finite = [...table].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
      const max = finite[finite.length - 1];
      const next = prng(dtype.length * 7919);
      const xs: number[] = [];
      // midpoints of neighbours (exact ties) and points a little either side of them
      for (let k = 0; k < 400; k++) {
        const i = next() % (finite.length - 1);
        const [a, b] = [finite[i], finite[i + 1]];
        if (a === b) continue;
        const mid = (a + b) / 2;
        xs.push(mid, mid + (b - a) * 1e-6, mid - (b - a) * 1e-6, a + (b - a) * ((next() / 2 ** 32) * 0.98 + 0.01));
      }
      const values = Float64Array.from(xs.filter((x) => Math.abs(x) < max));
      const out = new Uint8Array(values.length * width);
      encodeFloats(values, values.length, dtype, out);
      const got = width === 2 ? new Uint16Array(out.buffer) : out;
      const nearest = nearestOf(table);
      for (let i = 0; i < values.length; i++) {
        const want = nearest(values[i]);
        // the brute force prefers the even pattern, and so must the encoder, also across a sign
        expect(table[got[i]], `${dtype} ${values[i]}`).toBe(table[want]);
        expect(got[i] & 1, `${dtype} tie at ${values[i]}`).toBe(table[got[i]] === table[want] ? want & 1 : got[i] & 1);
      }
    });
  }

  it('overflow gives infinity where the dtype has one, NaN where it has not; NaN stays NaN', () => {
    const enc = (dtype: string, x: number) => {
      const out = new Uint8Array(dtype === 'F16' || dtype === 'BF16' ? 2 : 1);
      encodeFloats(Float64Array.of(x), 1, dtype, out);
      return decodeTable(dtype)[out.length === 2 ? out[0] | (out[1] << 8) : out[0]];
    };
    expect(enc('F16', 70000)).toBe(Infinity);
    expect(enc('F16', 65519)).toBe(65504);
    expect(enc('F16', 65520)).toBe(Infinity); // halfway to the next binade rounds to even: overflow
    expect(enc('BF16', -1e39)).toBe(-Infinity);
    expect(enc('F8_E5M2', 1e6)).toBe(Infinity);
    expect(enc('F8_E4M3', 1000)).toBeNaN();
    expect(enc('F8_E4M3', 460)).toBe(448);
    expect(enc('F8_E4M3FNUZ', 1000)).toBeNaN();
    for (const d of ['F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'F8_E5M2FNUZ']) expect(enc(d, NaN)).toBeNaN();
    const f32 = new Uint8Array(4);
    expect(encodeFloats(Float64Array.of(NaN), 1, 'F32', f32)).toBe(1);
    expect(new Float32Array(f32.buffer)[0]).toBeNaN();
    // F32 is rounded once from float64: 1 + 2^-24 is a tie and goes to the even 1, 1 + 3*2^-24 up
    encodeFloats(Float64Array.of(1 + 2 ** -24), 1, 'F32', f32);
    expect(new Float32Array(f32.buffer)[0]).toBe(1);
    encodeFloats(Float64Array.of(1 + 3 * 2 ** -24), 1, 'F32', f32);
    expect(new Float32Array(f32.buffer)[0]).toBe(1 + 2 ** -22);
  });

  it('BF16 is rounded once from float64, not twice through F32', () => {
    // 1 + 2^-8 is a BF16 tie (to even: 1); plus 2^-30 it is above the tie, but F32 rounds that
    // extra away and a second rounding would give 1: the answer is 1 + 2^-7
    const out = new Uint8Array(2);
    encodeFloats(Float64Array.of(1 + 2 ** -8 + 2 ** -30), 1, 'BF16', out);
    expect(decodeTable('BF16')[out[0] | (out[1] << 8)]).toBe(1 + 2 ** -7);
    encodeFloats(Float64Array.of(1 + 2 ** -8), 1, 'BF16', out);
    expect(decodeTable('BF16')[out[0] | (out[1] << 8)]).toBe(1);
  });
});
