/**
 * Acceptance 3: three-way merges. Two branches fine-tuning disjoint blocks merge with no rule, and
 * the result holds, tensor by tensor, each side's changed blocks and the base elsewhere, by
 * reference to the same chunks (nothing stored). A tensor changed on both sides stops the merge
 * (non-zero exit, every conflict listed) with the store byte-identical; rules resolve it exactly as
 * they say.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest, ManifestTensorSegment } from '../../src/core/objects.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { decodeElements } from '../../src/diff/elementDecoder.js';
import { threeWayMerge } from '../../src/merge/threeWayMerge.js';
import { createRef } from '../../src/repo/branches.js';
import type { Repository } from '../../src/repo/repository.js';
import { resolveRevision } from '../../src/repo/resolveRevision.js';
import { ckpt, cleanupTempDirs, snapshot, tempDir } from '../e2e/helpers.js';
import { checkoutTo, commitAs, MERGE_FIXTURES, newRepo, readSafetensors, type StTensor } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

const fixture = (n: string) => readSafetensors(path.join(MERGE_FIXTURES, `${n}.f32.safetensors`));
const base = fixture('base');
const ftA = fixture('ft_a');
const ftB = fixture('ft_b');

/** The base model with the tensors matching `prefixes` taken from `from`. */
function variant(from: Map<string, StTensor>, prefixes: string[]): Uint8Array {
  return writeSafetensors(
    [...base].map(([name, t]) => {
      const src = prefixes.some((p) => name.startsWith(p)) ? from.get(name)! : t;
      return { name, dtype: src.dtype, shape: src.shape, data: new Uint8Array(src.data) };
    }),
  );
}

async function tensorsOf(repo: Repository, rev: string): Promise<Map<string, StTensor>> {
  return readSafetensors(await checkoutTo(repo, rev, path.join(await tempDir('ckpt-3way-'), 'out.safetensors')));
}

async function manifestOf(repo: Repository, rev: string): Promise<Map<string, ManifestTensorSegment>> {
  const tree = await repo.readTree((await repo.readCommit(await resolveRevision(repo, rev))).tree);
  const m: Manifest = await repo.readManifest(tree.files['model.safetensors'].manifest);
  return new Map(m.segments.filter((s): s is ManifestTensorSegment => s.t === 'tensor').map((s) => [s.name, s]));
}

describe('three-way merge', () => {
  let repo: Repository;
  beforeAll(async () => {
    repo = await newRepo();
    await commitAs(repo, path.join(MERGE_FIXTURES, 'base.f32.safetensors'), 'model.safetensors', 'base');
    await createRef(repo, 'heads', 'start');
    await commitAs(repo, variant(ftA, ['fc1.']), 'model.safetensors', 'fine-tune fc1', 'a');
    await commitAs(repo, variant(ftB, ['head.']), 'model.safetensors', 'fine-tune head', 'b');
    await commitAs(repo, variant(ftB, ['fc1.', 'norm.']), 'model.safetensors', 'fine-tune fc1 and norm', 'c');
  });

  it('disjoint changes merge with no rule: each side\'s blocks, the base elsewhere, chunks reused', async () => {
    await createRef(repo, 'heads', 'ab', 'a');
    const packs = await fs.readdir(repo.store.packsDir);
    const r = await threeWayMerge(repo, { theirs: 'b', into: 'ab' });
    expect(r.outcome).toBe('merged');
    expect(r.parents).toEqual([await resolveRevision(repo, 'a'), await resolveRevision(repo, 'b')]);
    expect(r.base).toBe(await resolveRevision(repo, 'start'));
    const got = await tensorsOf(repo, 'ab');
    expect([...got.keys()]).toEqual([...base.keys()]);
    for (const [name, t] of got) {
      const want = name.startsWith('fc1.') ? ftA : name.startsWith('head.') ? ftB : base;
      expect(t.data.equals(want.get(name)!.data), name).toBe(true);
    }
    // the merged file names the very chunks of the side each tensor came from, and no chunk was stored
    const [ma, mb, mm] = [await manifestOf(repo, 'a'), await manifestOf(repo, 'b'), await manifestOf(repo, 'ab')];
    for (const [name, s] of mm) expect(s.chunks, name).toEqual((name.startsWith('head.') ? mb : ma).get(name)!.chunks);
    expect(await fs.readdir(repo.store.packsDir)).toEqual(packs);
    // the record: both parents, the base, in the recipe
    const c = await repo.readCommit(r.id);
    expect(c.meta.extra?.merge).toMatchObject({ method: 'three-way', base: r.base, inputs: [await resolveRevision(repo, 'b')] });
  });

  it('a tensor changed on both sides with no rule: exit 1, each conflict listed, the store unchanged', async () => {
    await createRef(repo, 'heads', 'ac', 'a');
    const before = await snapshot(path.join(repo.root, '.ckpt'));
    const r = await ckpt(repo.root, 'merge', 'c', '--into', 'ac');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/merge conflict: 2 tensor\(s\) changed on both sides/);
    const listed = r.stderr.split('\n').filter((l) => /^\s+model\.safetensors\s/.test(l));
    expect(listed.map((l) => l.trim().split(/\s+/)[1]).sort()).toEqual(['fc1.bias', 'fc1.weight']);
    // how far each side moved it, as relative L2 numbers
    for (const l of listed) expect(l).toMatch(/\d\.\d+e?-?\d*\s+\d\.\d+/);
    expect(await snapshot(path.join(repo.root, '.ckpt'))).toEqual(before);
    expect(await resolveRevision(repo, 'ac')).toBe(await resolveRevision(repo, 'a'));
  });

  it('rules resolve conflicts exactly as they say; the first match wins', async () => {
    await createRef(repo, 'heads', 'rules', 'a');
    const r = await threeWayMerge(repo, { theirs: 'c', into: 'rules', rules: ['fc1.weight=theirs', 'fc1.*=average:0.25'] });
    expect(r.outcome).toBe('merged');
    const got = await tensorsOf(repo, 'rules');
    expect(got.get('fc1.weight')!.data.equals(ftB.get('fc1.weight')!.data)).toBe(true);
    // average:0.25 = 0.75 * ours + 0.25 * theirs, rounded once to F32
    const ours = decodeElements(ftA.get('fc1.bias')!.data, 'F32');
    const theirs = decodeElements(ftB.get('fc1.bias')!.data, 'F32');
    const want = Float32Array.from(ours, (x, i) => 0.75 * x + 0.25 * theirs[i]);
    expect(Buffer.from(got.get('fc1.bias')!.data).equals(Buffer.from(want.buffer))).toBe(true);
    // changed on one side only: taken from it with no rule involved
    expect(got.get('norm.weight')!.data.equals(ftB.get('norm.weight')!.data)).toBe(true);
    expect(got.get('head.weight')!.data.equals(base.get('head.weight')!.data)).toBe(true);
    expect((await repo.readCommit(r.id)).meta.extra?.merge).toMatchObject({ resolved: { 'model.safetensors:fc1.weight': 'theirs', 'model.safetensors:fc1.bias': 'average:0.25' } });

    await createRef(repo, 'heads', 'dflt', 'a');
    await threeWayMerge(repo, { theirs: 'c', into: 'dflt', default: 'base' });
    const d = await tensorsOf(repo, 'dflt');
    for (const n of ['fc1.weight', 'fc1.bias']) expect(d.get(n)!.data.equals(base.get(n)!.data), n).toBe(true);
    expect(d.get('norm.weight')!.data.equals(ftB.get('norm.weight')!.data)).toBe(true);

    await createRef(repo, 'heads', 'mine', 'a');
    await threeWayMerge(repo, { theirs: 'c', into: 'mine', rules: ['fc1.*=ours'] });
    const o = await tensorsOf(repo, 'mine');
    for (const n of ['fc1.weight', 'fc1.bias']) expect(o.get(n)!.data.equals(ftA.get(n)!.data), n).toBe(true);
  });

  it('a fast-forward moves the branch; merging an ancestor changes nothing', async () => {
    await createRef(repo, 'heads', 'ff', 'start');
    const r = await threeWayMerge(repo, { theirs: 'a', into: 'ff' });
    expect(r.outcome).toBe('fast-forward');
    expect(await resolveRevision(repo, 'ff')).toBe(await resolveRevision(repo, 'a'));
    const again = await threeWayMerge(repo, { theirs: 'start', into: 'ff' });
    expect(again.outcome).toBe('up-to-date');
    expect(await resolveRevision(repo, 'ff')).toBe(await resolveRevision(repo, 'a'));
  });
});
