import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodedElementBytes } from '../../src/diff/elementDecoder.js';
import {
  chunkSumSquares,
  TensorDeltaStats,
  type NumericTensorStats,
  type TensorStats,
} from '../../src/diff/tensorDeltaStats.js';

const dir = new URL('../../fixtures/diff/', import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, dir)));

type Expected = Omit<NumericTensorStats, 'kind' | 'dtype'>;
interface PairCase {
  name: string;
  dtype: string;
  shape: number[];
  expected: Expected;
}
const pairs: PairCase[] = JSON.parse(readFileSync(new URL('pairs/pairs.json', dir), 'utf8')).cases;
const mlp: {
  tensors: { name: string; dtype: string; shape: number[]; offset: number; len: number }[];
  expected: Record<string, Expected>;
} = JSON.parse(readFileSync(new URL('mlp/mlp.json', dir), 'utf8'));

const COUNTS = ['elements', 'changed', 'nanAppeared', 'infAppeared'] as const;
const FIGURES = ['changedFraction', 'maxAbsDelta', 'meanAbsDelta', 'l2Delta', 'relL2', 'cosine', 'normA', 'normB'] as const;

function relErr(got: number, want: number): number {
  return got === want ? 0 : Math.abs(got - want) / Math.max(Math.abs(want), Number.MIN_VALUE);
}

/** Counts exact, every figure within `tol` relative error, nulls where the reference has them. */
function expectStats(got: TensorStats, want: Expected, tol: number, label: string): void {
  expect(got.kind, label).toBe('numeric');
  const s = got as NumericTensorStats;
  for (const k of COUNTS) expect(s[k], `${label} ${k}`).toBe(want[k]);
  for (const k of FIGURES) {
    const w = want[k];
    const g = s[k];
    if (w === null) expect(g, `${label} ${k}`).toBeNull();
    else expect(relErr(g as number, w), `${label} ${k}: ${g} vs ${w}`).toBeLessThanOrEqual(tol);
  }
}

function whole(dtype: string, a: Uint8Array, b: Uint8Array): TensorStats {
  const s = new TensorDeltaStats(dtype);
  s.addPair(a, b);
  return s.finalize();
}

/** Bytes shifted to an odd offset, as a chunk sliced out of a pack may be. */
function misaligned(x: Uint8Array): Uint8Array {
  const buf = new Uint8Array(x.byteLength + 3);
  buf.set(x, 3);
  return buf.subarray(3);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}

/**
 * Feeds A and B as fixed-size chunks the way diff does: equal chunks through addEqual with the
 * commit-time sum of squares, differing ones as pairs.
 */
function chunked(dtype: string, a: Uint8Array, b: Uint8Array, chunk: number): { stats: TensorStats; equal: number } {
  const s = new TensorDeltaStats(dtype);
  let equal = 0;
  for (let off = 0; off < a.byteLength; off += chunk) {
    const ca = a.subarray(off, off + chunk);
    const cb = b.subarray(off, off + chunk);
    if (sameBytes(ca, cb)) {
      equal++;
      s.addEqual(ca.byteLength, chunkSumSquares(ca, dtype));
    } else {
      s.addPair(misaligned(ca), cb);
    }
  }
  return { stats: s.finalize(), equal };
}

describe('perturbation pairs, against torch float64', () => {
  for (const c of pairs) {
    it(`${c.name} (${c.dtype})`, () => {
      const a = read(`pairs/${c.name}.a.bin`);
      const b = read(`pairs/${c.name}.b.bin`);
      expectStats(whole(c.dtype, a, b), c.expected, 1e-9, c.name);
    });
  }

  it('scaling by 1.01 gives relative L2 0.01 and cosine 1', () => {
    const s = whole('F32', read('pairs/scale_1.01_f32.a.bin'), read('pairs/scale_1.01_f32.b.bin')) as NumericTensorStats;
    expect(Math.abs(s.relL2! - 0.01)).toBeLessThanOrEqual(1e-6);
    expect(Math.abs(s.cosine! - 1)).toBeLessThanOrEqual(1e-12);
    expect(s.changed).toBe(4096);
  });

  it('one changed element counts 1', () => {
    const s = whole('F32', read('pairs/one_element_f32.a.bin'), read('pairs/one_element_f32.b.bin')) as NumericTensorStats;
    expect([s.changed, s.maxAbsDelta, s.l2Delta]).toEqual([1, 0.5, 0.5]);
  });

  it('NaN/Inf: appeared counts, same-bit NaN unchanged, -0 vs +0 changed with zero delta', () => {
    const a = read('pairs/nan_inf_f32.a.bin');
    const b = read('pairs/nan_inf_f32.b.bin');
    const s = whole('F32', a, b) as NumericTensorStats;
    expect([s.nanAppeared, s.infAppeared]).toEqual([3, 2]);
    // 10 perturbed, 4 new NaN/Inf, Inf->NaN, -0: every other position (including the shared NaN) unchanged.
    expect(s.changed).toBe(16);
    expect(Number.isFinite(s.l2Delta) && Number.isFinite(s.cosine!)).toBe(true);
  });
});

describe('chunked feeding equals feeding everything as pairs', () => {
  const cases = [...pairs.map((c) => ({ name: c.name, dtype: c.dtype, a: read(`pairs/${c.name}.a.bin`), b: read(`pairs/${c.name}.b.bin`) }))];
  for (const c of cases) {
    it(c.name, () => {
      const size = decodedElementBytes(c.dtype)!;
      const reference = whole(c.dtype, c.a, c.b) as NumericTensorStats;
      for (const chunk of [size, 8 * size, 100 * size, 4096, 65536, c.a.byteLength]) {
        const { stats } = chunked(c.dtype, c.a, c.b, chunk);
        expectStats(stats, reference, 1e-12, `${c.name}/${chunk}`);
        expect(stats).toMatchObject({ maxAbsDelta: reference.maxAbsDelta });
      }
    });
  }

  it('a sparse change: most chunks equal, the result the same', () => {
    const a = read('pairs/one_element_f32.a.bin');
    const b = read('pairs/one_element_f32.b.bin');
    const { stats, equal } = chunked('F32', a, b, 256);
    expect(equal).toBe(a.byteLength / 256 - 1);
    expectStats(stats, pairs.find((c) => c.name === 'one_element_f32')!.expected, 1e-9, 'sparse');
  });
});

describe('the training run: every tensor against torch float64', () => {
  const s0 = read('mlp/step0.bin');
  const s5 = read('mlp/step5.bin');
  for (const t of mlp.tensors) {
    it(`${t.name} (${t.dtype} ${t.shape.join('x')})`, () => {
      const a = s0.subarray(t.offset, t.offset + t.len);
      const b = s5.subarray(t.offset, t.offset + t.len);
      expectStats(whole(t.dtype, a, b), mlp.expected[t.name], 1e-5, t.name);
      expectStats(chunked(t.dtype, a, b, 512).stats, mlp.expected[t.name], 1e-5, `${t.name}/512`);
    });
  }
});

describe('edge cases', () => {
  it('zero tensors: relL2 0 and no cosine; a change from zero has no finite relL2', () => {
    const z = new Uint8Array(16);
    const z2 = whole('F32', z, z) as NumericTensorStats;
    expect([z2.relL2, z2.cosine, z2.changed]).toEqual([0, null, 0]);
    const one = new Uint8Array(new Float32Array([0, 0, 1, 0]).buffer);
    const s = whole('F32', z, one) as NumericTensorStats;
    expect([s.relL2, s.cosine, s.l2Delta, s.changed]).toEqual([null, null, 1, 1]);
  });

  it('an empty tensor gives zeros, not NaN', () => {
    const s = new TensorDeltaStats('BF16').finalize() as NumericTensorStats;
    expect([s.elements, s.changedFraction, s.meanAbsDelta, s.relL2]).toEqual([0, 0, 0, 0]);
  });

  it('chunkSumSquares leaves out NaN and Inf, and matches a direct sum', () => {
    const v = new Float32Array([3, NaN, 4, Infinity, -Infinity, -12]);
    expect(chunkSumSquares(new Uint8Array(v.buffer), 'F32')).toBe(169);
    const big = new Float64Array(10000).map((_, i) => Math.sin(i));
    const direct = big.reduce((s, x) => s + x * x, 0);
    expect(relErr(chunkSumSquares(new Uint8Array(big.buffer), 'F64'), direct)).toBeLessThan(1e-12);
  });

  it('chunkSumSquares of F32 equals, bit for bit, that of the same values widened to F64', () => {
    // the stored sums of F32 chunks must not change with the fast path: a manifest names them
    for (let t = 0; t < 6; t++) {
      const n = 9000 + 3217 * t;
      const v = new Float32Array(n).map((_, i) => Math.sin(i * 0.7 + t) * 10 ** ((i % 13) - 6));
      v[17] = NaN;
      v[n - 2] = Infinity;
      v[n >> 1] = -Infinity;
      const wide = Float64Array.from(v);
      // unaligned too: a tensor may start at any byte of a file
      const bytes = new Uint8Array(n * 4 + 3).subarray(t % 4, t % 4 + n * 4);
      bytes.set(new Uint8Array(v.buffer));
      expect(chunkSumSquares(bytes, 'F32')).toBe(chunkSumSquares(new Uint8Array(wide.buffer), 'F64'));
    }
  });

  it('quantized and other undecodable dtypes count bytes changed', () => {
    const s = new TensorDeltaStats('Q4_K');
    expect(s.numeric).toBe(false);
    s.addEqual(144);
    s.addPair(Uint8Array.from([1, 2, 3, 4]), Uint8Array.from([1, 9, 3, 8]));
    expect(s.finalize()).toEqual({ kind: 'bytes', dtype: 'Q4_K', bytes: 148, bytesChanged: 2, changedFraction: 2 / 148 });
  });

  it('refuses an equal chunk without its sum, partial elements, and pairs of unequal length', () => {
    const s = new TensorDeltaStats('F32');
    expect(() => s.addEqual(16)).toThrow(/sum of squares/);
    expect(() => s.addEqual(6, 1)).toThrow(/whole number/);
    expect(() => s.addPair(new Uint8Array(4), new Uint8Array(8))).toThrow(/differ in length/);
    expect(() => chunkSumSquares(new Uint8Array(4), 'Q8_0')).toThrow(/no element values/);
  });
});
