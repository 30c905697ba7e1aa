/**
 * diff() over real repositories: checkpoints committed through commitFiles and read back from
 * packs, files not committed, and the work tree. Statistics against PyTorch's (fixtures/diff);
 * chunk reads counted at the ChunkReader.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ObjectId } from '../../src/core/objectId.js';
import type { Manifest } from '../../src/core/objects.js';
import { decodeElements } from '../../src/diff/elementDecoder.js';
import type { NumericTensorStats, TensorStats } from '../../src/diff/tensorDeltaStats.js';
import { writeSafetensors, type SafetensorsTensor } from '../../src/formats/safetensors.js';
import { commitFiles } from '../../src/repo/commit.js';
import { diff, type DiffReport } from '../../src/repo/diff.js';
import { readLayout } from '../../src/repo/ingestFile.js';
import { Repository } from '../../src/repo/repository.js';
import { resolveRevision } from '../../src/repo/resolveRevision.js';

const FIX = new URL('../../fixtures/', import.meta.url);
const fixture = (p: string) => new Uint8Array(readFileSync(new URL(p, FIX)));

type Expected = Omit<NumericTensorStats, 'kind' | 'dtype'>;
const pairs: { name: string; dtype: string; shape: number[]; expected: Expected }[] = JSON.parse(
  readFileSync(new URL('diff/pairs/pairs.json', FIX), 'utf8'),
).cases;
const mlp: {
  tensors: { name: string; dtype: string; shape: number[]; offset: number; len: number }[];
  expected: Record<string, Expected>;
  groupRelChangeDepth2: Record<string, number>;
} = JSON.parse(readFileSync(new URL('diff/mlp/mlp.json', FIX), 'utf8'));

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

async function tempRepo(chunkSize = 4096): Promise<{ dir: string; repo: Repository }> {
  const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-diff-')));
  scratch.push(dir);
  return { dir, repo: await Repository.init(dir, { chunkSize }) };
}

async function commit(repo: Repository, file: string, bytes: Uint8Array, message: string, meta = {}): Promise<ObjectId> {
  await fs.writeFile(file, bytes);
  // Stored plain: a delta-coded chunk would read its base, and the counts below are exact.
  return (await commitFiles(repo, [file], { message, meta, compress: false })).id;
}

function mlpTensors(step: string): SafetensorsTensor[] {
  const bytes = fixture(`diff/mlp/${step}.bin`);
  return mlp.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: bytes.subarray(t.offset, t.offset + t.len) }));
}

const FIGURES = ['changedFraction', 'maxAbsDelta', 'meanAbsDelta', 'l2Delta', 'relL2', 'cosine', 'normA', 'normB'] as const;
const COUNTS = ['elements', 'changed', 'nanAppeared', 'infAppeared'] as const;

function relErr(got: number, want: number): number {
  return got === want ? 0 : Math.abs(got - want) / Math.max(Math.abs(want), Number.MIN_VALUE);
}

function expectStats(got: TensorStats | undefined, want: Expected, tol: number, label: string): void {
  expect(got?.kind, label).toBe('numeric');
  const s = got as NumericTensorStats;
  for (const k of COUNTS) expect(s[k], `${label} ${k}`).toBe(want[k]);
  for (const k of FIGURES) {
    const w = want[k];
    if (w === null) expect(s[k], `${label} ${k}`).toBeNull();
    else expect(relErr(s[k] as number, w), `${label} ${k}: ${s[k]} vs torch ${w}`).toBeLessThanOrEqual(tol);
  }
}

const changedChunkCount = (r: DiffReport) => r.tensors.changed.reduce((n, t) => n + (t.changedChunks?.length ?? t.chunks), 0);

describe('diff of known perturbations, committed and read back from packs', () => {
  for (const c of pairs) {
    it(`${c.name}: every statistic as PyTorch computed it`, async () => {
      const { dir, repo } = await tempRepo();
      const file = path.join(dir, 'w.safetensors');
      const st = (side: string) => writeSafetensors([{ name: 'w', dtype: c.dtype, shape: c.shape, data: fixture(`diff/pairs/${c.name}.${side}.bin`) }]);
      await commit(repo, file, st('a'), 'a');
      await commit(repo, file, st('b'), 'b');
      const r = await diff(repo, 'HEAD~1', 'HEAD', { cwd: dir });
      expect(r.tensors.changed.map((t) => t.name)).toEqual(['w']);
      expectStats(r.tensors.changed[0].stats, c.expected, 1e-9, c.name);
    });
  }

  it('x1.01 gives relL2 0.01 and cosine 1; one changed element counts 1', async () => {
    const { dir, repo } = await tempRepo();
    const file = path.join(dir, 'w.safetensors');
    const a = fixture('diff/pairs/scale_1.01_f32.a.bin');
    await commit(repo, file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64, 64], data: a }]), 'a');
    // Scaled in float64 and rounded once to F32: the relative change is 0.01 up to F32 rounding.
    const scaled = new Float32Array(decodeElements(a, 'F32').map((x) => x * 1.01));
    await commit(repo, file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64, 64], data: new Uint8Array(scaled.buffer) }]), 'b');
    const one = new Float32Array(a.slice().buffer);
    one[1234] += 1;
    await commit(repo, file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64, 64], data: new Uint8Array(one.buffer) }]), 'c');

    const s = (await diff(repo, 'HEAD~2', 'HEAD~1', { cwd: dir })).tensors.changed[0].stats as NumericTensorStats;
    expect(Math.abs(s.relL2! - 0.01)).toBeLessThanOrEqual(1e-6);
    expect(Math.abs(s.cosine! - 1)).toBeLessThanOrEqual(1e-12);
    const t = (await diff(repo, 'HEAD~2', 'HEAD', { cwd: dir })).tensors.changed[0];
    expect((t.stats as NumericTensorStats).changed).toBe(1);
    expect(t.changedChunks).toEqual([Math.floor((1234 * 4) / 4096)]);
  });
});

describe('the 5-step training run, against torch', () => {
  async function run() {
    const { dir, repo } = await tempRepo(4096);
    const file = path.join(dir, 'model.safetensors');
    await commit(repo, file, writeSafetensors(mlpTensors('step0')), 'step 0', { step: 0, metrics: { loss: 1.41 } });
    await commit(repo, file, writeSafetensors(mlpTensors('step5')), 'step 5', { step: 5, metrics: { loss: 1.12 } });
    return { dir, repo, file };
  }

  it('every statistic within 1e-5 of torch; only differing chunks are read, each once', async () => {
    const { dir, repo } = await run();
    const reader = await repo.store.reader();
    const streamed: string[] = [];
    const stream = reader.stream.bind(reader);
    reader.stream = (ids) => {
      streamed.push(...ids);
      return stream(ids);
    };
    const r = await diff(repo, 'HEAD~1', 'HEAD', { cwd: dir, reader });
    await reader.close();

    expect(r.tensors.unchanged.map((t) => t.name)).toEqual(['head.bias', 'pos']);
    for (const t of r.tensors.changed) expectStats(t.stats, mlp.expected[t.name], 1e-5, t.name);
    for (const g of r.summary.groups) {
      const want = mlp.groupRelChangeDepth2[g.prefix];
      if (want !== undefined) expect(relErr(g.relChange!, want), g.prefix).toBeLessThanOrEqual(1e-5);
    }
    expect(r.meta).toEqual([
      { field: 'message', a: 'step 0', b: 'step 5' },
      { field: 'step', a: 0, b: 5, delta: 5 },
      { field: 'metrics.loss', a: 1.41, b: 1.12, delta: 1.12 - 1.41 },
    ]);

    // Unchanged chunks: those of unchanged tensors, and the equal chunks of changed ones.
    const manifests = await Promise.all(
      ['HEAD~1', 'HEAD'].map(async (rev) => {
        const c = await repo.readCommit(await resolveRevision(repo, rev));
        return repo.readManifest(Object.values((await repo.readTree(c.tree)).files)[0].manifest);
      }),
    );
    const ids = (m: Manifest) => new Set(m.segments.flatMap((s) => (s.t === 'tensor' ? s.chunks.map((c) => c[0]) : [])));
    const [idsA, idsB] = manifests.map(ids);
    const shared = [...idsA].filter((id) => idsB.has(id));
    expect(shared.length).toBeGreaterThan(0);
    const tok = r.tensors.changed.find((t) => t.name === 'tok.weight')!;
    expect(tok.chunks).toBe(8);
    expect(tok.changedChunks!.length).toBe(1);
    for (const id of streamed) expect(shared.includes(id), `read an unchanged chunk ${id}`).toBe(false);
    const pairs = changedChunkCount(r);
    expect(streamed.length).toBe(2 * pairs);
    expect(reader.stats.chunksRead).toBe(2 * pairs);
    expect(r.read.chunks).toBe(2 * pairs);
  });

  it('--no-stats reads no chunk at all', async () => {
    const { dir, repo } = await run();
    const reader = await repo.store.reader();
    const r = await diff(repo, 'HEAD~1', 'HEAD', { cwd: dir, reader, stats: false });
    await reader.close();
    expect(reader.stats.chunksRead).toBe(0);
    expect(r.read).toEqual({ chunks: 0, bytes: 0 });
    expect(r.tensors.changed.length).toBe(18);
    expect(r.tensors.changed.every((t) => t.stats === undefined)).toBe(true);
  });

  it('manifests without sums of squares (written before them): A\'s equal chunks are read instead, same figures', async () => {
    const { dir, repo } = await run();
    const readManifest = repo.readManifest.bind(repo);
    repo.readManifest = async (id) => {
      const m = await readManifest(id);
      for (const s of m.segments) if (s.t === 'tensor') delete s.sumsq;
      return m;
    };
    const reader = await repo.store.reader();
    const r = await diff(repo, 'HEAD~1', 'HEAD', { cwd: dir, reader });
    await reader.close();
    for (const t of r.tensors.changed) expectStats(t.stats, mlp.expected[t.name], 1e-5, t.name);
    const equalInChanged = r.tensors.changed.reduce((n, t) => n + t.chunks - t.changedChunks!.length, 0);
    expect(equalInChanged).toBeGreaterThan(0);
    expect(reader.stats.chunksRead).toBe(2 * changedChunkCount(r) + equalInChanged);
  });

  it('a file not committed, against a commit: the same figures, and only its differing chunks read back', async () => {
    const { dir, repo } = await run();
    const other = path.join(dir, 'ckpts', 'step_5.safetensors');
    await fs.mkdir(path.dirname(other));
    await fs.writeFile(other, writeSafetensors(mlpTensors('step5')));
    const r = await diff(repo, 'HEAD~1', 'ckpts/step_5.safetensors', { cwd: dir });
    expect(r.b).toEqual({ kind: 'files', path: 'ckpts/step_5.safetensors', files: ['ckpts/step_5.safetensors'] });
    expect(r.files.removed.map((f) => f.path)).toEqual(['model.safetensors']);
    expect(r.files.added.map((f) => f.path)).toEqual(['ckpts/step_5.safetensors']);
    for (const t of r.tensors.changed) {
      expect(t.fileA).toBe('model.safetensors');
      expectStats(t.stats, mlp.expected[t.name], 1e-5, t.name);
    }
    expect(r.read.chunks).toBe(2 * changedChunkCount(r));

    // The same file against the commit holding it: nothing differs.
    const same = await diff(repo, 'HEAD', 'model.safetensors', { cwd: dir });
    expect(same.identical).toBe(true);
    expect(same.read.chunks).toBe(0);
  });

  it('one revision: against the work tree\'s copy of its files', async () => {
    const { dir, repo, file } = await run();
    expect((await diff(repo, 'HEAD', undefined, { cwd: dir })).identical).toBe(true);
    await fs.writeFile(file, writeSafetensors(mlpTensors('step0')));
    const r = await diff(repo, 'HEAD~1', undefined, { cwd: dir });
    expect(r.b).toEqual({ kind: 'worktree', files: ['model.safetensors'] });
    expect(r.identical).toBe(true);
    const back = await diff(repo, 'HEAD', undefined, { cwd: dir });
    expect(back.meta).toEqual([]);
    expect(back.tensors.changed.length).toBe(18);
    // From step 5 back to step 0: relL2 is now relative to step 5's norm, but the delta is the same.
    const tok = back.tensors.changed.find((t) => t.name === 'tok.weight')!.stats as NumericTensorStats;
    expect(relErr(tok.l2Delta, mlp.expected['tok.weight'].l2Delta)).toBeLessThanOrEqual(1e-5);
    await fs.rm(file);
    const gone = await diff(repo, 'HEAD', undefined, { cwd: dir });
    expect(gone.files.removed.map((f) => f.path)).toEqual(['model.safetensors']);
    expect(gone.tensors.removed.length).toBe(20);
  });

  it('a name that is both a revision and a file is refused; ./name means the file', async () => {
    const { dir, repo } = await run();
    await fs.writeFile(path.join(dir, 'main'), writeSafetensors(mlpTensors('step0')));
    await expect(diff(repo, 'HEAD~1', 'main', { cwd: dir })).rejects.toMatchObject({ code: 'E_AMBIGUOUS' });
    expect((await diff(repo, 'HEAD~1', './main', { cwd: dir })).tensors.unchanged.length).toBe(20);
    await expect(diff(repo, 'HEAD', 'nope', { cwd: dir })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});

describe('structure', () => {
  it('a folder checkpoint: files added and removed, tensors renamed, retyped, reshaped, moved between shards', async () => {
    const { dir, repo } = await tempRepo();
    const ck = path.join(dir, 'ck');
    await fs.mkdir(ck);
    const f32 = (n: number, seed: number) => new Uint8Array(new Float32Array(n).map((_, i) => Math.sin(i + seed)).buffer);
    await fs.writeFile(path.join(ck, 'a.safetensors'), writeSafetensors([
      { name: 'keep', dtype: 'F32', shape: [8], data: f32(8, 1) },
      { name: 'old.name', dtype: 'F32', shape: [8], data: f32(8, 2) },
      { name: 'retype', dtype: 'F32', shape: [4], data: f32(4, 3) },
      { name: 'reshape', dtype: 'F32', shape: [2, 4], data: f32(8, 4) },
      { name: 'mover', dtype: 'F32', shape: [4], data: f32(4, 5) },
    ]));
    await fs.writeFile(path.join(ck, 'gone.safetensors'), writeSafetensors([{ name: 'dropped', dtype: 'F32', shape: [4], data: f32(4, 6) }]));
    await commitFiles(repo, [ck], { message: 'v1', compress: false });

    await fs.rm(path.join(ck, 'gone.safetensors'));
    await fs.writeFile(path.join(ck, 'a.safetensors'), writeSafetensors([
      { name: 'keep', dtype: 'F32', shape: [8], data: f32(8, 1) },
      { name: 'new.name', dtype: 'F32', shape: [8], data: f32(8, 2) },
      { name: 'retype', dtype: 'I32', shape: [4], data: f32(4, 3) },
      { name: 'reshape', dtype: 'F32', shape: [4, 2], data: f32(8, 4) },
    ]));
    await fs.writeFile(path.join(ck, 'b.safetensors'), writeSafetensors([
      { name: 'mover', dtype: 'F32', shape: [4], data: f32(4, 7) },
      { name: 'fresh', dtype: 'BF16', shape: [2], data: new Uint8Array(4) },
    ]));
    const r = await diff(repo, 'HEAD', 'ck', { cwd: dir });
    expect(r.files.added.map((f) => f.path)).toEqual(['ck/b.safetensors']);
    expect(r.files.removed.map((f) => f.path)).toEqual(['ck/gone.safetensors']);
    expect(r.files.changed.map((f) => f.path)).toEqual(['ck/a.safetensors']);
    expect(r.tensors.added.map((t) => t.name)).toEqual(['fresh']);
    expect(r.tensors.removed.map((t) => t.name)).toEqual(['dropped']);
    expect(r.tensors.renamed.map((t) => [t.from.name, t.to.name])).toEqual([['old.name', 'new.name']]);
    expect(r.tensors.dtypeChanged.map((t) => [t.name, t.sameBytes])).toEqual([['retype', true]]);
    expect(r.tensors.shapeChanged.map((t) => [t.name, t.sameBytes])).toEqual([['reshape', true]]);
    expect(r.tensors.changed.map((t) => [t.name, t.fileA, t.file])).toEqual([['mover', 'ck/a.safetensors', 'ck/b.safetensors']]);
    expect(r.tensors.changed[0].stats?.kind).toBe('numeric');
    expect(r.tensors.unchanged.map((t) => t.name)).toEqual(['keep']);
  });

  it('quantized GGUF tensors: the fraction of bytes changed, between two files with no repository', async () => {
    const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-diff-')));
    scratch.push(dir);
    const a = path.join(dir, 'a.gguf');
    const b = path.join(dir, 'b.gguf');
    await fs.copyFile(new URL('gguf/tiny_v3.gguf', FIX), a);
    const layout = await readLayout(a);
    const q = layout.segments.find((s) => s.kind === 'tensor' && s.dtype === 'Q4_0')!;
    const bytes = new Uint8Array(await fs.readFile(a));
    for (const at of [q.offset + 3, q.offset + 17]) bytes[at] ^= 0xff;
    await fs.writeFile(b, bytes);
    const r = await diff(undefined, 'a.gguf', 'b.gguf', { cwd: dir });
    expect(r.tensors.changed.length).toBe(1);
    expect(r.tensors.changed[0].stats).toEqual({ kind: 'bytes', dtype: 'Q4_0', bytes: q.length, bytesChanged: 2, changedFraction: 2 / q.length });
    expect(r.summary.top).toEqual([]);
  });

  it('statistics stay correct over chunks that start at odd offsets in a Node Buffer', () => {
    const pool = Buffer.alloc(64);
    const odd = pool.subarray(3, 3 + 16);
    new Uint8Array(new Float32Array([1, -2, 3, 4]).buffer).forEach((x, i) => (odd[i] = x));
    expect([...decodeElements(odd, 'F32')]).toEqual([1, -2, 3, 4]);
  });
});
