/**
 * Merge's speed paths give the same result as the plain one: the codec pool's worker threads
 * (decoding the inputs' chunks, encoding the result's) store the same commit, byte for byte, as a
 * merge on the main thread, and still refuse a corrupt input chunk; the fused float32 two-term
 * loop gives the same bits as decoding to float64, linearBlock and rounding.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/core/seededRandom.js';
import { arithmeticMerge } from '../../src/merge/arithmeticMerge.js';
import { linearBlock, linearPairF32 } from '../../src/merge/mergeMethods.js';
import type { Repository } from '../../src/repo/repository.js';
import { resolveRevision } from '../../src/repo/resolveRevision.js';
import { cleanupTempDirs, snapshot } from '../e2e/helpers.js';
import { checkoutTo, commitAs, MERGE_FIXTURES, newRepo } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

const fx = (n: string, d = 'f32') => path.join(MERGE_FIXTURES, `${n}.${d}.safetensors`);

async function inputsRepo(dtype: string): Promise<Repository> {
  const repo = await newRepo();
  await commitAs(repo, fx('base', dtype), 'model.safetensors', 'base');
  await commitAs(repo, fx('ft_a', dtype), 'model.safetensors', 'a', 'a');
  await commitAs(repo, fx('ft_b', dtype), 'model.safetensors', 'b', 'b');
  return repo;
}

describe('merge: codec pool and fused loop', () => {
  const cases = [
    { dtype: 'f32', o: { method: 'linear', revs: ['a', 'b'], weights: [0.3, 0.7] } },
    { dtype: 'f32', o: { method: 'linear', revs: ['a', 'b', 'main'], weights: [0.2, 0.5, 0.3] } },
    { dtype: 'bf16', o: { method: 'slerp', revs: ['a', 'b'], t: 0.4 } },
    { dtype: 'f32', o: { method: 'ties', revs: ['a', 'b'], base: 'main', density: 0.5 } },
  ];
  for (const c of cases) {
    it(`${c.o.method} ${c.o.revs.length} models ${c.dtype}: worker threads store the same commit as the main thread`, async () => {
      const [plain, pooled] = [await inputsRepo(c.dtype), await inputsRepo(c.dtype)];
      const x = await arithmeticMerge(plain, { ...c.o, workers: 0 });
      const y = await arithmeticMerge(pooled, { ...c.o, workers: 2 });
      expect(y.id).toBe(x.id);
      const [fx1, fx2] = [path.join(plain.root, 'out.safetensors'), path.join(pooled.root, 'out.safetensors')];
      await checkoutTo(plain, x.id, fx1);
      await checkoutTo(pooled, y.id, fx2);
      expect(readFileSync(fx2).equals(readFileSync(fx1))).toBe(true);
    });
  }

  it('a corrupt input chunk read by a worker: E_CORRUPT, no commit, the store unchanged', async () => {
    const repo = await inputsRepo('f32');
    const tree = await repo.readTree((await repo.readCommit(await resolveRevision(repo, 'b'))).tree);
    const m = await repo.readManifest(Object.values(tree.files)[0].manifest);
    const seg = m.segments.find((s) => s.t === 'tensor' && s.name === 'fc1.weight')!;
    const rec = (await repo.store.reloadIndex()).get(seg.chunks[1][0])!;
    const pack = path.join(repo.store.packsDir, `${rec.pack}.pack`);
    const bytes = await fs.readFile(pack);
    bytes[rec.offset + (rec.stored >> 1)] ^= 0x10;
    await fs.writeFile(pack, bytes);
    const before = await snapshot(path.join(repo.root, '.ckpt'));
    await expect(arithmeticMerge(repo, { method: 'linear', revs: ['a', 'b'], workers: 2 })).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(await snapshot(path.join(repo.root, '.ckpt'))).toEqual(before);
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
