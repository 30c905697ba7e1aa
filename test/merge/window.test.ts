/**
 * Acceptance 4: checkpoint averaging over the last 5 commits of a real training run (torch.save
 * files of fixtures/merge/run, committed one per step as a training loop would) equals PyTorch's
 * mean of those checkpoints within 1 ulp, and the merge commit has all 5 among its parents. The
 * same run checks `ckpt export`: a pickle checkpoint becomes a safetensors file holding
 * byte-for-byte the same tensors.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arithmeticMerge } from '../../src/merge/arithmeticMerge.js';
import { scheduleWeights } from '../../src/merge/window.js';
import type { Repository } from '../../src/repo/repository.js';
import { ckpt, cleanupTempDirs, tempDir } from '../e2e/helpers.js';
import { checkoutTo, commitAs, HAVE_TORCH, MERGE_FIXTURES, newRepo, PYTHON, torchReference } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

const RUN = path.join(MERGE_FIXTURES, 'run');
const steps = readdirSync(RUN).filter((f) => f.endsWith('.pt')).sort();

describe.skipIf(!HAVE_TORCH)('window averaging of a real run', () => {
  let repo: Repository;
  const ids: string[] = [];
  beforeAll(async () => {
    repo = await newRepo();
    for (const f of steps) ids.push(await commitAs(repo, path.join(RUN, f), `ckpts/${f}`, f));
  });

  it('last:5 (uniform) equals torch.stack(...).mean(0) within 1 ulp; the 5 commits are parents', async () => {
    expect(steps.length).toBe(6);
    const s = await arithmeticMerge(repo, { method: 'linear', revs: [], window: 'last:5' });
    const last5 = ids.slice(-5);
    expect(s.recipe.inputs).toEqual(last5);
    for (const id of last5) expect(s.parents).toContain(id);
    expect(s.parents[0]).toBe(ids[ids.length - 1]);
    // a pickle cannot be written back: the result is safetensors, named after the first input
    expect(s.files).toEqual([expect.objectContaining({ path: 'ckpts/step_0100.safetensors', format: 'safetensors', from: 'ckpts/step_0100.pt' })]);
    const out = await checkoutTo(repo, s.id, path.join(await tempDir('ckpt-window-'), 'avg.safetensors'));

    const minus = await arithmeticMerge(repo, { method: 'linear', revs: [ids[ids.length - 1]], window: 'last:5', schedule: 'minus-sqrt' });
    const outMinus = await checkoutTo(repo, minus.id, path.join(await tempDir('ckpt-window-'), 'wsm.safetensors'));
    const inputs = steps.slice(-5).map((f) => path.join(RUN, f));
    const [mean, wsm] = torchReference([
      { method: 'mean', inputs, output: out },
      { method: 'linear', inputs, weights: scheduleWeights('minus-sqrt', 5), output: outMinus },
    ]);
    for (const r of [mean, wsm]) {
      expect(r.missing).toEqual([]);
      expect(Object.keys(r.tensors).length).toBeGreaterThan(5);
      for (const [name, t] of Object.entries(r.tensors)) expect(t.ulp, `${name}: ${t.ulp} ulp`).toBeLessThanOrEqual(1);
    }
    // the schedule's weights decay: 1 - sqrt over the window, oldest checkpoint weighted most
    const w = scheduleWeights('minus-sqrt', 5);
    expect(w.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    for (let i = 1; i < 5; i++) expect(w[i]).toBeLessThan(w[i - 1]);
  });

  it('ckpt export turns a stored torch pickle into safetensors with byte-for-byte the same tensors', async () => {
    const out = path.join(await tempDir('ckpt-export-'), 'step.safetensors');
    const r = await ckpt(repo.root, 'export', ids[2], '-o', out, '--format', 'safetensors');
    expect(r.code, r.stderr).toBe(0);
    const check = spawnSync(
      PYTHON,
      [
        '-c',
        `
import json, struct, sys, torch
pt, st = sys.argv[1], sys.argv[2]
obj = torch.load(pt, map_location='cpu')
raw = open(st, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
h = json.loads(raw[8:8 + n])
meta = h.pop('__metadata__')
values = json.loads(meta['ckpt.values'])
assert values['step'] == obj['step'] and values['loss'] == obj['loss'], values
names = sorted(h)
want = sorted('model.' + k for k in obj['model'])
assert names == want, (names, want)
for k, t in obj['model'].items():
    a, b = h['model.' + k]['data_offsets']
    assert raw[8 + n + a:8 + n + b] == t.contiguous().numpy().tobytes(), k
    assert h['model.' + k]['shape'] == list(t.shape), k
print(len(names))
`,
        path.join(RUN, steps[2]),
        out,
      ],
      { encoding: 'utf8' },
    );
    expect(check.status, check.stderr).toBe(0);
    expect(Number(check.stdout.trim())).toBe(10);
  });
});
