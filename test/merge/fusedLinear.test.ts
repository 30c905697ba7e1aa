/**
 * Merge's fused float32 path (two models, or slerp's second pass, straight from the stored bytes
 * into the output's) gives the same bits as decoding to float64, linearBlock and rounding once,
 * NaN, infinities, overflow and subnormals included. End to end it is covered by identities and
 * the PyTorch reference (test/merge/), which merge F32 fixtures with two models.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/core/seededRandom.js';
import { arithmeticMerge } from '../../src/merge/arithmeticMerge.js';
import { linearBlock, linearPairF32 } from '../../src/merge/mergeMethods.js';
import { commitFiles } from '../../src/repo/commit.js';
import { cleanupTempDirs } from '../e2e/helpers.js';
import { checkoutTo, MERGE_FIXTURES, newRepo } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

describe('merge: fused float32 linear loop', () => {
  it('inputs stored plain or compressed: the same merge, byte for byte', async () => {
    const results: Buffer[] = [];
    const ids: string[] = [];
    for (const compress of [true, false]) {
      const repo = await newRepo();
      for (const [name, branch] of [['base', undefined], ['ft_a', 'a'], ['ft_b', 'b']] as const) {
        const dest = path.join(repo.root, 'model.safetensors');
        await fs.copyFile(path.join(MERGE_FIXTURES, `${name}.f32.safetensors`), dest);
        await commitFiles(repo, [dest], { message: name, compress, ...(branch ? { branch } : {}) });
      }
      const s = await arithmeticMerge(repo, { method: 'linear', revs: ['a', 'b'], weights: [0.3, 0.7] });
      ids.push(s.id);
      results.push(readFileSync(await checkoutTo(repo, s.id, path.join(repo.root, 'out.safetensors'))));
    }
    expect(ids[1]).toBe(ids[0]);
    expect(results[1].equals(results[0])).toBe(true);
  });

  it('the fused float32 loop gives the bits of float64 arithmetic rounded once, NaN counted', () => {
    const rnd = mulberry32(14);
    const n = 4096;
    const a = new Float32Array(n);
    const b = new Float32Array(n);
    const u = new Uint32Array(a.buffer);
    for (let i = 0; i < n; i++) {
      a[i] = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 60 - 30);
      b[i] = (rnd() - 0.5) * 2 ** Math.floor(rnd() * 60 - 30);
    }
    u[0] = 0x7fc00000; // NaN
    u[1] = 0x00000001; // smallest subnormal
    a[2] = Infinity;
    b[2] = -Infinity; // inf - inf: NaN
    a[3] = 3.4e38;
    b[3] = 3.4e38; // overflows float32 after the sum
    for (const [w, normalize] of [[[0.3, 0.7], true], [[1.5, -0.25], false], [[0.6, 0.6], true]] as const) {
      const ref = new Float64Array(n);
      linearBlock([Float64Array.from(a), Float64Array.from(b)], w, normalize, n, ref);
      const want = Float32Array.from(ref);
      const got = new Float32Array(n);
      const divisor = normalize ? w[0] + w[1] : 1;
      const nans = linearPairF32(a, b, w[0], w[1], divisor, n, got);
      expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer))).toBe(true);
      expect(nans).toBe(want.filter((x) => x !== x).length);
      expect(nans).toBeGreaterThanOrEqual(2);
    }
  });
});
