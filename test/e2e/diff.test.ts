/**
 * `ckpt diff` through the real CLI: the fixtures' 5-step training run committed as safetensors
 * files, its statistics against the JSON PyTorch wrote at fixture time, the text table, exit
 * codes, and files not committed.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { ckpt, ckptJson, ckptOk, cleanupTempDirs, FIXTURES, newRepo } from './helpers.js';

afterAll(cleanupTempDirs);

type Stats = Record<string, number | null>;
const mlp: {
  tensors: { name: string; dtype: string; shape: number[]; offset: number; len: number }[];
  expected: Record<string, Stats>;
  groupRelChangeDepth2: Record<string, number>;
} = JSON.parse(readFileSync(path.join(FIXTURES, 'diff', 'mlp', 'mlp.json'), 'utf8'));

function checkpoint(step: string): Uint8Array {
  const bytes = new Uint8Array(readFileSync(path.join(FIXTURES, 'diff', 'mlp', `${step}.bin`)));
  return writeSafetensors(mlp.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes.subarray(t.offset, t.offset + t.len) })));
}

const STATS = ['elements', 'changed', 'changedFraction', 'maxAbsDelta', 'meanAbsDelta', 'l2Delta', 'relL2', 'cosine', 'normA', 'normB', 'nanAppeared', 'infAppeared'];

function expectTorch(got: Stats, want: Stats, label: string): void {
  for (const k of STATS) {
    const w = want[k];
    const g = got[k];
    if (w === null) expect(g, `${label} ${k}`).toBeNull();
    else if (w === 0) expect(g, `${label} ${k}`).toBe(0);
    else expect(Math.abs((g as number) - w) / Math.abs(w), `${label} ${k}: ${g} vs torch ${w}`).toBeLessThanOrEqual(1e-5);
  }
}

describe('ckpt diff', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await newRepo('--chunk-size', '4096');
    // Stored plain: these tests are about diff, and the chunk counts stay those of the diff alone.
    await fs.writeFile(path.join(dir, 'model.safetensors'), checkpoint('step0'));
    await ckptOk(dir, 'commit', 'model.safetensors', '-m', 'step 0', '--step', '0', '--metric', 'loss=1.41', '-q', '--no-compress');
    await fs.writeFile(path.join(dir, 'model.safetensors'), checkpoint('step5'));
    await ckptOk(dir, 'commit', 'model.safetensors', '-m', 'step 5', '--step', '5', '--metric', 'loss=1.12', '-q', '--no-compress');
  });

  it('--json: every statistic of the training run agrees with PyTorch', async () => {
    const r = await ckptJson(dir, 'diff', 'HEAD~1', 'HEAD');
    expect(r.identical).toBe(false);
    expect(r.a).toMatchObject({ kind: 'commit', rev: 'HEAD~1' });
    expect(r.tensors.unchanged.map((t: { name: string }) => t.name)).toEqual(['head.bias', 'pos']);
    expect(r.tensors.changed.length).toBe(Object.values(mlp.expected).filter((e) => e.changed).length);
    for (const t of r.tensors.changed) expectTorch(t.stats, mlp.expected[t.name], t.name);
    for (const g of r.summary.groups) {
      const want = mlp.groupRelChangeDepth2[g.prefix];
      if (want !== undefined) expect(Math.abs(g.relChange - want) / want, g.prefix).toBeLessThanOrEqual(1e-5);
    }
    expect(r.meta.map((m: { field: string }) => m.field)).toEqual(['message', 'step', 'metrics.loss']);
    expect(r.summary.top.length).toBe(10);
    // Only the differing chunks were read: one pair per changed chunk.
    const pairs = r.tensors.changed.reduce((n: number, t: { changedChunks: number[] }) => n + t.changedChunks.length, 0);
    expect(r.read.chunks).toBe(2 * pairs);
    expect(r.tensors.changed.find((t: { name: string }) => t.name === 'tok.weight').changedChunks.length).toBe(1);
  });

  it('text: an aligned table of the changed tensors, modules and the most changed; no colour off a TTY', async () => {
    const out = await ckptOk(dir, 'diff', 'HEAD~1', 'HEAD', '--top', '3', '--group-depth', '1');
    expect(out).not.toMatch(/\x1b\[/);
    expect(out).toMatch(/metrics\.loss\s+1\.41\s+->\s+1\.12\s+\(-0\.29\)/);
    expect(out).toMatch(/tensors: 18 changed, 2 unchanged/);
    const lines = out.split('\n');
    const head = lines.findIndex((l) => l.includes('rel L2') && l.includes('cosine') && l.includes('elements changed'));
    expect(head).toBeGreaterThan(0);
    const tok = lines.find((l) => l.trimStart().startsWith('tok.weight'))!;
    expect(tok).toMatch(/F32\s+\[512, 16\]\s+32\.0 KiB\s+1\/8\s+384 \(4\.69%\)/);
    // Right-aligned columns end at the same place on every row of the table.
    const end = (l: string) => l.indexOf('cosine') + 'cosine'.length;
    expect(tok.length).toBeGreaterThanOrEqual(end(lines[head]));
    expect(out).toMatch(/modules \(group depth 1\)/);
    expect(out).toMatch(/most changed \(top 3 by relative L2\)/);
  });

  it('identical checkpoints: "no changes", exit 0, with or without --exit-code', async () => {
    const r = await ckpt(dir, 'diff', 'HEAD', 'HEAD', '--exit-code');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/no changes/);
    const j = await ckptJson(dir, 'diff', 'HEAD', 'model.safetensors', '--exit-code');
    expect(j.identical).toBe(true);
    expect((await ckpt(dir, 'diff', 'HEAD')).stdout).toMatch(/no changes/);
  });

  it('--exit-code exits 1 when anything differs; without it, 0', async () => {
    expect((await ckpt(dir, 'diff', 'HEAD~1', 'HEAD', '--exit-code', '--no-stats')).code).toBe(1);
    expect((await ckpt(dir, 'diff', 'HEAD~1', 'HEAD', '--exit-code', '--json')).code).toBe(1);
    expect((await ckpt(dir, 'diff', 'HEAD~1', 'HEAD')).code).toBe(0);
    // Only metadata differs: still a difference.
    await ckptOk(dir, 'commit', 'model.safetensors', '-m', 'step 5 again', '--step', '5', '--metric', 'loss=1.12', '-q', '--no-compress');
    const r = await ckpt(dir, 'diff', 'HEAD~1', 'HEAD', '--exit-code', '--json');
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).meta).toEqual([{ field: 'message', a: 'step 5', b: 'step 5 again' }]);
  });

  it('a checkpoint not committed, and the work tree: the same figures', async () => {
    await fs.mkdir(path.join(dir, 'ckpts'), { recursive: true });
    await fs.writeFile(path.join(dir, 'ckpts', 'step_5.safetensors'), checkpoint('step5'));
    const r = await ckptJson(dir, 'diff', 'HEAD~2', 'ckpts/step_5.safetensors');
    expect(r.b).toEqual({ kind: 'files', path: 'ckpts/step_5.safetensors', files: ['ckpts/step_5.safetensors'] });
    for (const t of r.tensors.changed) expectTorch(t.stats, mlp.expected[t.name], t.name);

    await fs.writeFile(path.join(dir, 'model.safetensors'), checkpoint('step0'));
    try {
      const w = await ckptJson(dir, 'diff', 'HEAD~2');
      expect(w.b.kind).toBe('worktree');
      expect(w.identical).toBe(true);
      const back = await ckpt(dir, 'diff', 'HEAD', '--exit-code');
      expect(back.code).toBe(1);
      expect(back.stdout).toMatch(/B {2}the work tree/);
    } finally {
      await fs.writeFile(path.join(dir, 'model.safetensors'), checkpoint('step5'));
    }
  });

  it('--tensors and --no-stats', async () => {
    const r = await ckptJson(dir, 'diff', 'HEAD~2', 'HEAD', '--tensors', 'blocks.0.*', '--no-stats');
    expect(r.filter).toEqual(['blocks.0.*']);
    expect(r.meta).toEqual([]);
    expect(r.tensors.changed.map((t: { name: string }) => t.name).every((n: string) => n.startsWith('blocks.0.'))).toBe(true);
    expect(r.tensors.changed.every((t: { stats?: unknown }) => t.stats === undefined)).toBe(true);
    expect(r.read).toEqual({ chunks: 0, bytes: 0 });
  });

  it('errors: an unknown revision exits 4 with one line; a bad --top is a usage error', async () => {
    const r = await ckpt(dir, 'diff', 'HEAD', 'no-such-thing');
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no-such-thing is neither a revision nor a file/);
    expect((await ckpt(dir, 'diff', 'HEAD', 'HEAD', '--top', '-1')).code).toBe(2);
  });

  it('two files outside any repository', async () => {
    const out = path.dirname(dir);
    const a = path.join(out, `a-${path.basename(dir)}.safetensors`);
    const b = path.join(out, `b-${path.basename(dir)}.safetensors`);
    await fs.writeFile(a, checkpoint('step0'));
    await fs.writeFile(b, checkpoint('step5'));
    try {
      const r = await ckptJson(out, 'diff', a, b);
      for (const t of r.tensors.changed) expectTorch(t.stats, mlp.expected[t.name], t.name);
    } finally {
      await fs.rm(a);
      await fs.rm(b);
    }
  });
});
