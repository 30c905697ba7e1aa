/**
 * The live PyTorch test: a real (small) training run writes checkpoints with torch.save, ckpt
 * commits and checks each one out, and torch itself loads both files and compares every tensor
 * with torch.equal. Fixture files prove the parser on frozen bytes; this proves it on whatever
 * the installed torch writes today. It needs torch at /usr/bin/python3 (the first python3 on PATH
 * may be another interpreter) and is skipped, saying why, only when torch cannot be imported.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ckptJson, ckptOk, cleanupTempDirs, FIXTURES, newRepo, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

const PYTHON = '/usr/bin/python3';
const TRAIN = path.join(FIXTURES, 'torch_runs', 'train_run.py');

function torchMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} cannot be run (${r.error.message})`;
  if (r.status !== 0) return `${PYTHON} cannot import torch: ${r.stderr.trim().split('\n').pop()}`;
  return undefined;
}
const SKIP = torchMissing();
if (SKIP) console.warn(`torchLive skipped: ${SKIP}`);

/**
 * Loads each (original, checked out, listing) triple with torch and compares them structurally:
 * tensors by dtype, shape and torch.equal, everything else by ==; then the checked-out tensors'
 * raw bytes against the sha256 the training script recorded when it saved them.
 */
const CHECKER = String.raw`
import hashlib, json, sys, torch

def tbytes(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()

def same(a, b, p):
    assert type(a) is type(b), f'{p}: {type(a).__name__} vs {type(b).__name__}'
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, f'{p}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}'
        assert a.stride() == b.stride() and a.storage_offset() == b.storage_offset(), f'{p}: layout differs'
        assert torch.equal(a, b), f'{p}: torch.equal is False'
        return 1
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f'{p}: keys differ'
        return sum(same(a[k], b[k], f'{p}.{k}') for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{p}: lengths differ'
        return sum(same(x, y, f'{p}.{i}') for i, (x, y) in enumerate(zip(a, b)))
    assert a == b, f'{p}: {a!r} vs {b!r}'
    return 0

def by_name(obj, p=''):
    if isinstance(obj, torch.Tensor):
        yield p, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from by_name(v, f'{p}.{k}' if p else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from by_name(v, f'{p}.{i}' if p else str(i))

total = 0
for orig, out, listing in json.load(sys.stdin):
    a = torch.load(orig, map_location='cpu')
    b = torch.load(out, map_location='cpu')
    n = same(a, b, '')
    want = {t['name']: t['sha256'] for t in json.load(open(listing))['tensors']}
    got = {k: hashlib.sha256(tbytes(v)).hexdigest() for k, v in by_name(b)}
    assert got == want, f'{out}: tensor bytes differ from the listing'
    total += n
print(json.dumps({'tensors': total}))
`;

describe.skipIf(SKIP !== undefined)('live PyTorch training run', () => {
  it('every checkpoint of a run comes back byte-identical and torch.equal on every tensor', async () => {
    const work = await tempDir('ckpt-torch-');
    const runDir = path.join(work, 'run');
    const train = spawnSync(PYTHON, [TRAIN, '--out', runDir, '--mode', 'pretrain', '--dtype', 'float32', '--steps', '6', '--every', '2', '--seed', '7', '--small'], {
      encoding: 'utf8',
    });
    expect(train.status, train.stderr).toBe(0);
    const run = JSON.parse(readFileSync(path.join(runDir, 'run.json'), 'utf8')) as { checkpoints: { file: string; step: number; loss: number }[] };
    expect(run.checkpoints.map((c) => c.step)).toEqual([2, 4, 6]);

    const repo = await newRepo();
    const triples: [string, string, string][] = [];
    const ids: string[] = [];
    for (const c of run.checkpoints) {
      const file = path.join(runDir, c.file);
      const r = await ckptJson(repo, 'commit', file, '-m', `step ${c.step}`, '--step', String(c.step), '--metric', `loss=${c.loss}`);
      expect(r.files).toHaveLength(1);
      ids.push(r.id);
      expect(r.files[0].format).toBe('pytorch');

      // ckpt must name, type and shape every tensor the way the training script listed them.
      const listing = JSON.parse(readFileSync(file.replace(/\.pt$/, '.json'), 'utf8')) as { tensors: { name: string; dtype: string; shape: number[] }[] };
      const shown = await ckptJson(repo, 'show', r.id);
      const got = shown.files[0].tensors.map((t: { name: string; dtype: string; shape: number[] }) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
      const want = listing.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
      const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : 1);
      expect(got.sort(byName)).toEqual(want.sort(byName));
      triples.push([file, path.join(work, `out_${c.step}.pt`), file.replace(/\.pt$/, '.json')]);
    }

    const log = await ckptJson(repo, 'log');
    expect(JSON.stringify(log)).toContain('step 6');
    for (const [i, c] of run.checkpoints.entries()) {
      await ckptOk(repo, 'checkout', ids[i], '-o', triples[i][1]);
      const cmp = spawnSync('cmp', [triples[i][0], triples[i][1]], { encoding: 'utf8' });
      expect(cmp.status, `cmp ${c.file}: ${cmp.stdout}${cmp.stderr}`).toBe(0);
    }

    const check = spawnSync(PYTHON, ['-c', CHECKER], { input: JSON.stringify(triples), encoding: 'utf8' });
    expect(check.status, check.stderr).toBe(0);
    const { tensors } = JSON.parse(check.stdout) as { tensors: number };
    // 4 blocks of 12 tensors, embedding, positions, final norm (2), head (2): 54 parameters,
    // each with AdamW step, exp_avg, exp_avg_sq; in each of the files.
    expect(tensors).toBe(run.checkpoints.length * 54 * 4);
    await fs.rm(runDir, { recursive: true, force: true });
  });
});
