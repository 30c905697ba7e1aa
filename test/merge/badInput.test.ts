/**
 * Acceptance 5: bad input to `ckpt merge` is one line on stderr naming the tensor (or the flag),
 * a non-zero typed exit, and the store left byte for byte as it was. A NaN in one input is not an
 * error: it is kept in the result and reported.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import type { Repository } from '../../src/repo/repository.js';
import { ckpt, cleanupTempDirs, snapshot, tempDir } from '../e2e/helpers.js';
import { checkoutTo, commitAs, MERGE_FIXTURES, newRepo, readSafetensors, type StTensor } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

const fx = (n: string) => path.join(MERGE_FIXTURES, `${n}.f32.safetensors`);
const ftB = readSafetensors(fx('ft_b'));

/** ft_b with `edit` applied: return a tensor to keep (changed or not), or undefined to drop it. */
function variant(edit: (name: string, t: StTensor) => StTensor | undefined): Uint8Array {
  const out = [];
  for (const [name, t] of ftB) {
    const e = edit(name, { ...t, data: Buffer.from(t.data) });
    if (e) out.push({ name, dtype: e.dtype, shape: e.shape, data: new Uint8Array(e.data) });
  }
  return writeSafetensors(out);
}

describe('merge: bad input', () => {
  let repo: Repository;
  beforeAll(async () => {
    repo = await newRepo();
    await commitAs(repo, fx('base'), 'model.safetensors', 'base');
    await commitAs(repo, fx('ft_a'), 'model.safetensors', 'a', 'a');
    await commitAs(repo, fx('ft_b'), 'model.safetensors', 'b', 'b');
    const f32 = (t: StTensor) => new Float32Array(t.data.buffer, t.data.byteOffset, t.data.length / 4);
    await commitAs(repo, variant((n, t) => (n === 'head.bias' ? { ...t, shape: [16, 16] } : t)), 'model.safetensors', 'reshaped', 'shape');
    await commitAs(
      repo,
      variant((n, t) => (n === 'norm.bias' ? { dtype: 'F16', shape: t.shape, data: Buffer.from(new Uint16Array(t.shape[0]).buffer) } : t)),
      'model.safetensors',
      'half',
      'dtype',
    );
    await commitAs(repo, variant((n, t) => (n === 'fc2.bias' ? undefined : t)), 'model.safetensors', 'missing', 'missing');
    await commitAs(
      repo,
      variant((n, t) => {
        if (n === 'pos') t.data.writeBigInt64LE(99n, 0);
        return t;
      }),
      'model.safetensors',
      'int',
      'int',
    );
    await commitAs(
      repo,
      variant((n, t) => {
        if (n === 'fc2.bias') f32(t)[3] = NaN;
        return t;
      }),
      'model.safetensors',
      'nan',
      'nan',
    );
    // a history of its own: HEAD on a branch with no commit yet, then back
    await repo.store.refs.writeHead({ kind: 'branch', ref: 'refs/heads/alone' });
    await commitAs(repo, fx('ft_a'), 'model.safetensors', 'unrelated root');
    await repo.store.refs.writeHead({ kind: 'branch', ref: 'refs/heads/main' });
  });

  const cases: [string, string[], number, RegExp][] = [
    ['mismatched shapes', ['--method', 'linear', 'a', 'shape'], 3, /tensor head\.bias: shape \[256\] in a, \[16, 16\] in shape/],
    ['mismatched dtypes', ['--method', 'ties', 'a', 'dtype', '--density', '0.5'], 3, /tensor norm\.bias: dtype F32 in a, F16 in dtype/],
    ['a missing tensor', ['--method', 'task-arithmetic', 'a', 'missing'], 3, /tensor fc2\.bias: missing from missing/],
    ['integer tensors that differ', ['--method', 'linear', 'a', 'int'], 3, /tensor pos: I64 values differ between a and int/],
    ['unrelated histories, three-way', ['alone'], 4, /alone and main share no history/],
    ['unrelated histories, task vectors', ['--method', 'ties', 'a', 'alone'], 4, /share no history, so there is no merge base: name the base model with --base/],
    ['an unknown method', ['--method', 'soup', 'a', 'b'], 2, /unknown merge method "soup"/],
    ['a weight count that does not match', ['--method', 'linear', 'a', 'b', '--weights', '1,2,3'], 2, /--weights has 3 value\(s\) for 2 model\(s\)/],
    ['weights that are not numbers', ['--method', 'linear', 'a', 'b', '--weights', '1,x'], 2, /--weights expects numbers/],
    ['density 0', ['--method', 'ties', 'a', 'b', '--density', '0'], 2, /--density must be in \(0, 1\], got 0/],
    ['density above 1', ['--method', 'dare-ties', 'a', 'b', '--density', '1.5'], 2, /--density must be in \(0, 1\], got 1.5/],
    ['t out of range', ['--method', 'slerp', 'a', 'b', '--t', '1.2'], 2, /--t must be in \[0, 1\], got 1.2/],
    ['slerp of 3 models', ['--method', 'slerp', 'a', 'b', 'shape'], 2, /slerp merges exactly 2 models, got 3/],
    ['a window larger than the history', ['--window', 'last:9', 'a'], 2, /--window last:9: a has only 2 commit\(s\)/],
    ['an unknown revision', ['--method', 'linear', 'a', 'nosuch'], 4, /not found: revision nosuch/],
    ['a bad rule', ['b', '--rule', 'fc1.*=mine'], 2, /--rule fc1\.\*=mine: expected ours, theirs, base or average/],
    ['a --tensors glob that matches nothing', ['--method', 'linear', 'a', 'b', '--tensors', 'decoder.*'], 4, /no tensor matches --tensors decoder\.\*/],
    ['density that keeps nothing of a tensor', ['--method', 'ties', 'a', 'b', '--density', '0.001'], 2, /tensor fc1\.bias: --density 0.001 keeps none of its 128 elements/],
  ];

  for (const [what, args, code, message] of cases) {
    it(`${what}: one line, exit ${code}, store unchanged`, async () => {
      const store = path.join(repo.root, '.ckpt');
      const before = await snapshot(store);
      const r = await ckpt(repo.root, 'merge', ...args);
      expect(r.code, r.stderr).toBe(code);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
      expect(await snapshot(store)).toEqual(before);
    });
  }

  it('a NaN in one input is kept as NaN in the result and reported', async () => {
    const r = await ckpt(repo.root, 'merge', '--method', 'linear', 'a', 'nan', '--json');
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.nan).toEqual([{ tensor: 'fc2.bias', file: 'model.safetensors', count: 1 }]);
    const text = await ckpt(repo.root, 'merge', '--method', 'linear', 'a', 'nan');
    expect(text.stdout).toMatch(/NaN: fc2\.bias in model\.safetensors holds 1 NaN element\(s\)/);
    const out = await checkoutTo(repo, s.id, path.join(await tempDir('ckpt-nan-'), 'out.safetensors'));
    const got = readSafetensors(out).get('fc2.bias')!.data;
    const values = new Float32Array(new Uint8Array(got).buffer);
    expect(values[3]).toBeNaN();
    expect(values.filter((v) => Number.isNaN(v))).toHaveLength(1);
  });
});
