/**
 * Acceptance 2: every merge method on two fine-tunes of a really trained model (F32 and BF16)
 * equals a PyTorch reference computed from mergekit's formulas in float64, element by element,
 * within 1 ulp of the output dtype. The store uses 4 KiB chunks, so every tensor is merged across
 * many blocks (TIES thresholds, DARE's random stream and slerp's norms all span chunk boundaries).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { prng } from '../e2e/helpers.js';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeElements } from '../../src/diff/elementDecoder.js';
import { arithmeticMerge, type ArithmeticMergeOptions } from '../../src/merge/arithmeticMerge.js';
import { encodeFloats } from '../../src/merge/dtypeRounding.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';
import { checkoutTo, commitAs, readSafetensors, HAVE_TORCH, MERGE_FIXTURES, newRepo, torchReference, type ReferenceCase } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

const CASES: (Omit<ArithmeticMergeOptions, 'revs'> & { label: string; revs?: string[] })[] = [
  { label: 'linear', method: 'linear', weights: [0.3, 0.7] },
  { label: 'linear-unnormalized', method: 'linear', weights: [0.25, 0.5], normalize: false },
  { label: 'slerp', method: 'slerp', t: 0.4 },
  // fine-tunes of one model point almost the same way (slerp falls back to lerp); a model of
  // random weights does not, so this takes the spherical path
  { label: 'slerp-far', method: 'slerp', t: 0.3, revs: ['a', 'far'] },
  { label: 'task-arithmetic', method: 'task-arithmetic', weights: [0.6, 0.8], lambda: 0.9 },
  { label: 'ties', method: 'ties', weights: [1, 0.5], density: 0.4 },
  { label: 'dare-linear', method: 'dare-linear', weights: [0.7, 0.7], density: 0.6, seed: 5 },
  { label: 'dare-ties', method: 'dare-ties', weights: [1, 1], density: 0.5, seed: 9 },
];

/** The fixture's layout with every float tensor replaced by seeded random weights of its dtype. */
function randomLike(file: string, seed: number): Uint8Array {
  const next = prng(seed);
  const tensors = [...readSafetensors(file)].map(([name, t]) => {
    if (t.dtype !== 'F32' && t.dtype !== 'BF16') return { name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.data) };
    const n = t.data.length / (t.dtype === 'F32' ? 4 : 2);
    const f = new Float32Array(n);
    for (let i = 0; i < n; i++) f[i] = ((next() / 2 ** 32) * 2 - 1) * 0.1;
    const data = t.dtype === 'F32' ? new Uint8Array(f.buffer) : new Uint8Array(Uint16Array.from(new Uint32Array(f.buffer), (u) => u >>> 16).buffer);
    return { name, dtype: t.dtype, shape: t.shape, data };
  });
  return writeSafetensors(tensors);
}

/** A fixture with its F32 tensors rounded to F16 (the fixtures are F32 and BF16 only). */
function asF16(file: string): Uint8Array {
  return writeSafetensors(
    [...readSafetensors(file)].map(([name, t]) => {
      if (t.dtype !== 'F32') return { name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(t.data) };
      const v = decodeElements(t.data, 'F32');
      const data = new Uint8Array(v.length * 2);
      encodeFloats(v, v.length, 'F16', data);
      return { name, dtype: 'F16', shape: t.shape, data };
    }),
  );
}

describe.skipIf(!HAVE_TORCH)('merges against PyTorch', () => {
  it('F16 (made from the F32 fixtures): linear, slerp, ties and dare-ties within 1 ulp', async () => {
    const repo = await newRepo();
    const dir = await tempDir('ckpt-merge-f16-');
    const files: Record<string, string> = {};
    for (const n of ['base', 'ft_a', 'ft_b']) {
      files[n] = path.join(dir, `${n}.f16.safetensors`);
      await fs.writeFile(files[n], asF16(path.join(MERGE_FIXTURES, `${n}.f32.safetensors`)));
    }
    await commitAs(repo, files.base, 'model.safetensors', 'base');
    await commitAs(repo, files.ft_a, 'model.safetensors', 'a', 'a');
    await commitAs(repo, files.ft_b, 'model.safetensors', 'b', 'b');
    const cases: ReferenceCase[] = [];
    const recipes: Omit<ArithmeticMergeOptions, 'revs'>[] = [
      { method: 'linear', weights: [0.4, 0.6] },
      { method: 'slerp', t: 0.7 },
      { method: 'ties', weights: [1, 0.7], density: 0.3 },
      { method: 'dare-ties', weights: [1, 1], density: 0.7, seed: 2 },
    ];
    for (const r of recipes) {
      const s = await arithmeticMerge(repo, { ...r, revs: ['a', 'b'] });
      const output = await checkoutTo(repo, s.id, path.join(dir, `${r.method}.out.safetensors`));
      cases.push({ ...r, inputs: [files.ft_a, files.ft_b], base: r.method === 'linear' || r.method === 'slerp' ? null : files.base, output } as ReferenceCase);
    }
    torchReference(cases).forEach((res, i) => {
      expect(res.missing).toEqual([]);
      for (const [name, t] of Object.entries(res.tensors)) {
        expect(t.nan_mismatch, `${recipes[i].method} ${name}`).toBe(0);
        expect(t.ulp, `${recipes[i].method} ${name}: ${t.ulp} ulp`).toBeLessThanOrEqual(1);
      }
    });
  });

  for (const dtype of ['f32', 'bf16']) {
    it(`every method, ${dtype.toUpperCase()}: each output tensor within 1 ulp of the reference`, async () => {
      const repo = await newRepo();
      const fx = (n: string) => path.join(MERGE_FIXTURES, `${n}.${dtype}.safetensors`);
      await commitAs(repo, fx('base'), 'model.safetensors', 'base');
      await commitAs(repo, fx('ft_a'), 'model.safetensors', 'fine-tune a', 'a');
      await commitAs(repo, fx('ft_b'), 'model.safetensors', 'fine-tune b', 'b');
      const outDir = await tempDir('ckpt-merge-out-');
      const farFile = path.join(outDir, 'far.safetensors');
      await fs.writeFile(farFile, randomLike(fx('ft_b'), 7));
      await commitAs(repo, farFile, 'model.safetensors', 'random weights', 'far');
      const files: Record<string, string> = { a: fx('ft_a'), b: fx('ft_b'), far: farFile };
      const cases: ReferenceCase[] = [];
      for (const c of CASES) {
        const revs = c.revs ?? ['a', 'b'];
        const s = await arithmeticMerge(repo, { ...c, revs });
        expect(s.tensors.merged).toBeGreaterThan(0);
        const output = await checkoutTo(repo, s.id, path.join(outDir, `${c.label}.safetensors`));
        const { label, revs: _revs, ...recipe } = c;
        void label;
        void _revs;
        cases.push({ ...recipe, inputs: revs.map((r) => files[r]), base: recipe.method === 'linear' || recipe.method === 'slerp' ? null : fx('base'), output } as ReferenceCase);
      }
      const results = torchReference(cases);
      const worst: Record<string, number> = {};
      results.forEach((r, i) => {
        expect(r.missing, CASES[i].label).toEqual([]);
        const tensors = Object.entries(r.tensors);
        expect(tensors.length).toBe(10);
        for (const [name, t] of tensors) {
          expect(t.nan_mismatch, `${CASES[i].label} ${name}`).toBe(0);
          expect(t.ulp, `${CASES[i].label} ${name}: ${t.ulp} ulp from the reference`).toBeLessThanOrEqual(1);
        }
        worst[CASES[i].label] = Math.max(...tensors.map(([, t]) => t.ulp));
      });
      // the record of what was measured, for the report
      console.log(`${dtype}: largest ulp distance per method ${JSON.stringify(worst)}`);
    });
  }
});
