/**
 * Acceptance 1: the identities of the merge methods hold to the byte. The merged file is compared
 * with the fixture file itself (same framing, so the whole file must be equal), in F32 and BF16.
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeElements, decodeTable } from '../../src/diff/elementDecoder.js';
import { arithmeticMerge, type ArithmeticMergeOptions } from '../../src/merge/arithmeticMerge.js';
import { encodeFloats } from '../../src/merge/dtypeRounding.js';
import { linearBlock } from '../../src/merge/mergeMethods.js';
import type { Repository } from '../../src/repo/repository.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';
import { checkoutTo, commitAs, MERGE_FIXTURES, newRepo, readSafetensors } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

async function mergedBytes(repo: Repository, o: ArithmeticMergeOptions): Promise<Buffer> {
  const s = await arithmeticMerge(repo, o);
  const out = await checkoutTo(repo, s.id, path.join(await tempDir('ckpt-merge-id-'), 'out.safetensors'));
  return readFileSync(out);
}

describe('merge identities, byte for byte', () => {
  for (const dtype of ['f32', 'bf16']) {
    it(`${dtype.toUpperCase()}: linear 1,0; slerp t=0 and t=1; ties and dare at density 1 equal task arithmetic`, async () => {
      const repo = await newRepo();
      const fx = (n: string) => path.join(MERGE_FIXTURES, `${n}.${dtype}.safetensors`);
      const A = readFileSync(fx('ft_a'));
      const B = readFileSync(fx('ft_b'));
      await commitAs(repo, fx('base'), 'model.safetensors', 'base');
      await commitAs(repo, fx('ft_a'), 'model.safetensors', 'a', 'a');
      await commitAs(repo, fx('ft_b'), 'model.safetensors', 'b', 'b');

      expect((await mergedBytes(repo, { method: 'linear', revs: ['a', 'b'], weights: [1, 0] })).equals(A)).toBe(true);
      expect((await mergedBytes(repo, { method: 'linear', revs: ['b', 'a'], weights: [1, 0] })).equals(B)).toBe(true);
      expect((await mergedBytes(repo, { method: 'slerp', revs: ['a', 'b'], t: 0 })).equals(A)).toBe(true);
      expect((await mergedBytes(repo, { method: 'slerp', revs: ['a', 'b'], t: 1 })).equals(B)).toBe(true);

      // one task vector at weight 1 restores its model, by every task method at density 1
      for (const method of ['task-arithmetic', 'ties', 'dare-linear', 'dare-ties']) {
        expect((await mergedBytes(repo, { method, revs: ['a'], density: method === 'task-arithmetic' ? undefined : 1 })).equals(A), method).toBe(true);
      }
      // two task vectors: density 1 trims and drops nothing, so each sparse method is its dense one
      const ta = await mergedBytes(repo, { method: 'task-arithmetic', revs: ['a', 'b'], weights: [0.6, 0.8], lambda: 0.9 });
      const dl = await mergedBytes(repo, { method: 'dare-linear', revs: ['a', 'b'], weights: [0.6, 0.8], lambda: 0.9, density: 1, seed: 3 });
      expect(dl.equals(ta)).toBe(true);
      expect(ta.equals(A) || ta.equals(B)).toBe(false);
      const ties = await mergedBytes(repo, { method: 'ties', revs: ['a', 'b'], weights: [0.6, 0.8], density: 1, normalize: false });
      const dt = await mergedBytes(repo, { method: 'dare-ties', revs: ['a', 'b'], weights: [0.6, 0.8], density: 1, seed: 11 });
      expect(dt.equals(ties)).toBe(true);

      // --format safetensors writes a new header; the tensors are the same bytes
      const converted = await arithmeticMerge(repo, { method: 'linear', revs: ['a', 'b'], weights: [1, 0], format: 'safetensors' });
      const tensors = readSafetensors(await checkoutTo(repo, converted.id, path.join(await tempDir('ckpt-merge-id-'), 'c.safetensors')));
      for (const [name, t] of readSafetensors(fx('ft_a'))) expect(tensors.get(name)!.data.equals(t.data), name).toBe(true);

      // --tensors: only the matching tensors are merged, the rest are the first model's bytes
      const only = await arithmeticMerge(repo, { method: 'linear', revs: ['a', 'b'], tensors: 'fc1.*' });
      expect(only.tensors).toMatchObject({ merged: 2 });
      const part = readSafetensors(await checkoutTo(repo, only.id, path.join(await tempDir('ckpt-merge-id-'), 'p.safetensors')));
      for (const [name, t] of readSafetensors(fx('ft_a'))) expect(part.get(name)!.data.equals(t.data), name).toBe(!name.startsWith('fc1.'));

      // a model averaged with itself is the model
      expect((await mergedBytes(repo, { method: 'linear', revs: ['a', 'a'] })).equals(A)).toBe(true);
      expect((await mergedBytes(repo, { method: 'linear', revs: ['a', 'a', 'a'], weights: [0.2, 0.3, 0.5] })).equals(A)).toBe(true);
    });
  }

  it('the arithmetic itself: a block averaged with itself, and weights 1,0, round back to the same bits', () => {
    for (const dtype of ['F32', 'BF16']) {
      for (const [, t] of readSafetensors(path.join(MERGE_FIXTURES, `ft_a.${dtype.toLowerCase()}.safetensors`))) {
        if (t.dtype !== dtype) continue;
        const x = decodeElements(t.data, dtype);
        const out = new Float64Array(x.length);
        const bytes = new Uint8Array(t.data.length);
        linearBlock([x, x], [1, 1], true, x.length, out);
        encodeFloats(out, x.length, dtype, bytes);
        expect(Buffer.from(bytes).equals(t.data)).toBe(true);
        linearBlock([x, x.map(() => 5)], [1, 0], true, x.length, out);
        encodeFloats(out, x.length, dtype, bytes);
        expect(Buffer.from(bytes).equals(t.data)).toBe(true);
      }
    }
  });

  it('every non-NaN bit pattern of the 8- and 16-bit floats encodes back to itself', () => {
    for (const dtype of ['F16', 'BF16', 'F8_E4M3', 'F8_E5M2', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ']) {
      const table = decodeTable(dtype);
      const width = table.length === 65536 ? 2 : 1;
      const out = new Uint8Array(table.length * width);
      encodeFloats(table, table.length, dtype, out);
      const back = width === 2 ? new Uint16Array(out.buffer) : out;
      for (let bits = 0; bits < table.length; bits++) {
        if (Number.isNaN(table[bits])) continue;
        // FNUZ has no -0: its 0x80 is NaN, and -0.0 of other formats is kept
        expect(back[bits], `${dtype} 0x${bits.toString(16)}`).toBe(bits);
      }
    }
  });
});
