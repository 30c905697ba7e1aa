import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixedChunks } from '../../src/chunking/fixedChunks.js';
import type { ChunkRef } from '../../src/core/objects.js';
import { diffStates, type FileView, type StateView, type TensorInfo } from '../../src/diff/stateDiff.js';
import { chunkSumSquares, TensorDeltaStats, type NumericTensorStats } from '../../src/diff/tensorDeltaStats.js';

/** A tensor whose chunks are named by the given ids, each `chunkLen` bytes (F32 unless said). */
function tensor(name: string, ids: string[], opts: { dtype?: string; shape?: number[]; chunkLen?: number[] } = {}): TensorInfo {
  const lens = opts.chunkLen ?? ids.map(() => 16);
  const len = lens.reduce((s, n) => s + n, 0);
  return {
    name,
    dtype: opts.dtype ?? 'F32',
    shape: opts.shape ?? [len / 4],
    len,
    chunks: ids.map((id, i) => [id, lens[i]] as ChunkRef),
  };
}

function file(tensors: TensorInfo[], hash = tensors.map((t) => t.chunks.map((c) => c[0]).join('')).join('|')): FileView {
  return { format: 'safetensors', size: tensors.reduce((s, t) => s + t.len, 8), hash, tensors };
}

const one = (tensors: TensorInfo[], meta?: StateView['meta']): StateView => ({ files: { 'model.safetensors': file(tensors) }, meta });
const names = (xs: { name: string }[]) => xs.map((x) => x.name);

describe('diffStates: tensors', () => {
  const base = [tensor('embed.weight', ['e1', 'e2']), tensor('blocks.0.w', ['w1', 'w2', 'w3', 'w4']), tensor('head.b', ['h1'])];

  it('identical states: nothing differs, every tensor unchanged', () => {
    const d = diffStates(one(base, { step: 1 }), one(base, { step: 1 }));
    expect(d.identical).toBe(true);
    expect(names(d.tensors.unchanged)).toEqual(['blocks.0.w', 'embed.weight', 'head.b']);
    expect(d.tensors.unchanged[0]).toEqual({ name: 'blocks.0.w', file: 'model.safetensors', elements: 16 });
    expect([d.tensors.changed, d.tensors.added, d.tensors.removed, d.meta, d.files.changed]).toEqual([[], [], [], [], []]);
    expect(d.files.unchanged).toBe(1);
  });

  it('changed: lists only the indices of differing chunks', () => {
    const b = [base[0], tensor('blocks.0.w', ['w1', 'X2', 'w3', 'X4']), base[2]];
    const d = diffStates(one(base), one(b));
    expect(d.identical).toBe(false);
    expect(d.tensors.changed).toEqual([
      {
        name: 'blocks.0.w',
        file: 'model.safetensors',
        dtype: 'F32',
        shape: [16],
        elements: 16,
        bytes: 64,
        chunks: 4,
        changedChunks: [1, 3],
      },
    ]);
    expect(d.tensors.unchanged.length).toBe(2);
    expect(d.files.changed.map((f) => f.path)).toEqual(['model.safetensors']);
  });

  it('changed with chunks cut at other boundaries: no chunk pairing', () => {
    const a = [tensor('w', ['a', 'b'], { chunkLen: [16, 16] })];
    const b = [tensor('w', ['c', 'd', 'e', 'f'], { chunkLen: [8, 8, 8, 8] })];
    expect(diffStates(one(a), one(b)).tensors.changed[0].changedChunks).toBeNull();
  });

  it('added and removed', () => {
    const d = diffStates(one(base), one([...base.slice(1), tensor('lora.A', ['n1'])]));
    expect(names(d.tensors.removed)).toEqual(['embed.weight']);
    expect(d.tensors.added).toEqual([
      { name: 'lora.A', file: 'model.safetensors', dtype: 'F32', shape: [4], elements: 4, bytes: 16 },
    ]);
    expect(d.tensors.renamed).toEqual([]);
  });

  it('renamed: same dtype, shape and chunks under a new name; ties pair in name order', () => {
    const a = [tensor('old.a', ['s']), tensor('old.b', ['s']), tensor('gone', ['g']), tensor('retyped', ['r'])];
    const b = [tensor('new.a', ['s']), tensor('new.b', ['s']), tensor('fresh', ['f']), tensor('other', ['r'], { dtype: 'I32' })];
    const d = diffStates(one(a), one(b));
    expect(d.tensors.renamed.map((r) => [r.from.name, r.to.name])).toEqual([
      ['old.a', 'new.a'],
      ['old.b', 'new.b'],
    ]);
    // Same bytes read as another dtype is not the same tensor.
    expect(names(d.tensors.removed)).toEqual(['gone', 'retyped']);
    expect(names(d.tensors.added)).toEqual(['fresh', 'other']);
  });

  it('dtype and shape changes, and whether the bytes stayed', () => {
    const a = [tensor('reshaped', ['r1'], { shape: [2, 2] }), tensor('cast', ['c1']), tensor('grown', ['g1'], { shape: [4] })];
    const b = [
      tensor('reshaped', ['r1'], { shape: [4] }),
      tensor('cast', ['c2', 'c3'], { dtype: 'F64', shape: [4] }),
      tensor('grown', ['g1', 'g2'], { shape: [8] }),
    ];
    const d = diffStates(one(a), one(b));
    expect(d.tensors.dtypeChanged.map((r) => [r.name, r.a.dtype, r.b.dtype, r.sameBytes])).toEqual([['cast', 'F32', 'F64', false]]);
    expect(d.tensors.shapeChanged.map((r) => [r.name, r.a.shape, r.b.shape, r.sameBytes])).toEqual([
      ['grown', [4], [8], false],
      ['reshaped', [2, 2], [4], true],
    ]);
    expect(d.tensors.changed).toEqual([]);
  });
});

describe('diffStates: files', () => {
  it('added, removed, changed and unchanged files', () => {
    const a: StateView = {
      files: {
        'config.json': { format: 'opaque', size: 10, hash: 'c1', tensors: [] },
        'tokenizer.json': { format: 'opaque', size: 10, hash: 't1', tensors: [] },
        'old.bin': { format: 'opaque', size: 3, hash: 'o', tensors: [] },
      },
    };
    const b: StateView = {
      files: {
        'config.json': { format: 'opaque', size: 12, hash: 'c2', tensors: [] },
        'tokenizer.json': { format: 'opaque', size: 10, hash: 't1', tensors: [] },
        'new.bin': { format: 'opaque', size: 4, hash: 'n', tensors: [] },
      },
    };
    const d = diffStates(a, b);
    expect(d.files.added).toEqual([{ path: 'new.bin', format: 'opaque', size: 4, hash: 'n' }]);
    expect(d.files.removed.map((f) => f.path)).toEqual(['old.bin']);
    expect(d.files.changed).toEqual([
      { path: 'config.json', a: { path: 'config.json', format: 'opaque', size: 10, hash: 'c1' }, b: { path: 'config.json', format: 'opaque', size: 12, hash: 'c2' } },
    ]);
    expect(d.files.unchanged).toBe(1);
    expect(d.identical).toBe(false);
  });

  it('sharded: names are unique across shards, so a tensor moving shard still pairs with itself', () => {
    const a: StateView = {
      files: {
        'model-1.safetensors': file([tensor('l.0.w', ['a']), tensor('l.1.w', ['b'])]),
        'model-2.safetensors': file([tensor('l.2.w', ['c'])]),
      },
    };
    const b: StateView = {
      files: {
        'model-1.safetensors': file([tensor('l.0.w', ['a'])]),
        'model-2.safetensors': file([tensor('l.1.w', ['B']), tensor('l.2.w', ['c'])]),
      },
    };
    const d = diffStates(a, b);
    expect(d.tensors.changed.map((t) => [t.name, t.file, t.fileA])).toEqual([['l.1.w', 'model-2.safetensors', 'model-1.safetensors']]);
    expect(d.tensors.unchanged.map((t) => [t.name, t.file])).toEqual([
      ['l.0.w', 'model-1.safetensors'],
      ['l.2.w', 'model-2.safetensors'],
    ]);
  });

  it('a name two files share is told apart by file', () => {
    const two = (x: string, y: string): StateView => ({
      files: { 'policy.safetensors': file([tensor('fc.weight', [x])]), 'value.safetensors': file([tensor('fc.weight', [y])]) },
    });
    const d = diffStates(two('p', 'v'), two('p', 'V'));
    expect(d.tensors.changed.map((t) => [t.name, t.file])).toEqual([['fc.weight', 'value.safetensors']]);
    expect(d.tensors.unchanged.map((t) => [t.name, t.file])).toEqual([['fc.weight', 'policy.safetensors']]);
    // Each file's copy is its own tensor: dropping one file removes only its copy.
    const d2 = diffStates(two('p', 'v'), { files: { 'policy.safetensors': file([tensor('fc.weight', ['p'])]) } });
    expect(d2.tensors.removed.map((t) => [t.name, t.file])).toEqual([['fc.weight', 'value.safetensors']]);
    expect(d2.tensors.unchanged.length).toBe(1);
  });
});

describe('diffStates: metadata', () => {
  it('reports step, epoch, metrics, params, code and message changes, with numeric deltas', () => {
    const d = diffStates(
      one([], {
        message: 'step 1000',
        step: 1000,
        epoch: 1,
        metrics: { val_loss: 0.5, acc: 0.8 },
        params: { lr: 0.001, opt: 'adamw' },
        code: { commit: 'aaa', branch: 'main', dirty: false },
      }),
      one([], {
        message: 'step 2000',
        step: 2000,
        epoch: 1,
        metrics: { val_loss: 0.25, acc: 0.8, bleu: 30 },
        params: { lr: 0.0005, opt: 'adamw' },
        code: { commit: 'bbb', branch: 'main', dirty: true },
      }),
    );
    expect(d.meta).toEqual([
      { field: 'message', a: 'step 1000', b: 'step 2000' },
      { field: 'step', a: 1000, b: 2000, delta: 1000 },
      { field: 'metrics.bleu', a: null, b: 30 },
      { field: 'metrics.val_loss', a: 0.5, b: 0.25, delta: -0.25 },
      { field: 'params.lr', a: 0.001, b: 0.0005, delta: -0.0005 },
      { field: 'code.commit', a: 'aaa', b: 'bbb' },
      { field: 'code.dirty', a: false, b: true },
    ]);
    expect(d.identical).toBe(false);
  });

  it('a work-tree side has no metadata to compare', () => {
    const d = diffStates(one([], { step: 5, metrics: { loss: 1 } }), one([]));
    expect(d.meta).toEqual([]);
    expect(d.identical).toBe(true);
  });
});

describe('diffStates: tensor filter', () => {
  const a = one([tensor('blocks.0.attn.q', ['q']), tensor('blocks.0.mlp.w', ['m']), tensor('embed', ['e'])], { step: 1 });
  const b = one([tensor('blocks.0.attn.q', ['Q']), tensor('blocks.0.mlp.w', ['m']), tensor('head', ['h'])], { step: 2 });

  it('compares only matching tensors and leaves files and metadata out', () => {
    const d = diffStates(a, b, { tensors: 'blocks.*.mlp.*' });
    expect(d.filter).toEqual(['blocks.*.mlp.*']);
    expect(names(d.tensors.unchanged)).toEqual(['blocks.0.mlp.w']);
    expect([d.tensors.changed, d.tensors.added, d.tensors.removed, d.meta, d.files.changed]).toEqual([[], [], [], [], []]);
    expect(d.identical).toBe(true);
  });

  it('several globs: any may match', () => {
    const d = diffStates(a, b, { tensors: ['**.attn.*', 'embed', 'head'] });
    expect(names(d.tensors.changed)).toEqual(['blocks.0.attn.q']);
    expect(names(d.tensors.removed)).toEqual(['embed']);
    expect(names(d.tensors.added)).toEqual(['head']);
    expect(d.identical).toBe(false);
  });

  it('an empty glob list is no filter', () => {
    expect(diffStates(a, b, { tensors: [] }).filter).toBeNull();
  });
});

describe('diff of a training run, reading only the differing chunks', () => {
  const dir = new URL('../../fixtures/diff/', import.meta.url);
  const mlp: {
    tensors: { name: string; dtype: string; shape: number[]; offset: number; len: number }[];
    expected: Record<string, Record<string, number | null>>;
  } = JSON.parse(readFileSync(new URL('mlp/mlp.json', dir), 'utf8'));
  const CHUNK = 512;

  /** What commit would store: chunks by id, and the sum of squares of each tensor chunk. */
  function commit(bytes: Uint8Array, store: Map<string, Uint8Array>, sums: Map<string, number>): StateView {
    const tensors = mlp.tensors.map((t) => {
      const data = bytes.subarray(t.offset, t.offset + t.len);
      const chunks: ChunkRef[] = [];
      for (const span of fixedChunks(0, data.byteLength, CHUNK)) {
        const c = data.subarray(span.offset, span.offset + span.length);
        const id = createHash('sha256').update(c).digest('hex');
        store.set(id, c);
        sums.set(id, chunkSumSquares(c, t.dtype));
        chunks.push([id, c.byteLength]);
      }
      return { name: t.name, dtype: t.dtype, shape: t.shape, len: t.len, chunks };
    });
    return { files: { 'model.safetensors': file(tensors, createHash('sha256').update(bytes).digest('hex')) } };
  }

  it('matches torch for every tensor and never reads an equal chunk', () => {
    const store = new Map<string, Uint8Array>();
    const sums = new Map<string, number>();
    const a = commit(new Uint8Array(readFileSync(new URL('mlp/step0.bin', dir))), store, sums);
    const b = commit(new Uint8Array(readFileSync(new URL('mlp/step5.bin', dir))), store, sums);
    const reads: string[] = [];
    const readChunk = (id: string) => {
      reads.push(id);
      return store.get(id)!;
    };

    const d = diffStates<NumericTensorStats>(a, b);
    const infoA = new Map(a.files['model.safetensors'].tensors.map((t) => [t.name, t]));
    const infoB = new Map(b.files['model.safetensors'].tensors.map((t) => [t.name, t]));
    const skipped = new Set<string>();
    for (const ch of d.tensors.changed) {
      const ta = infoA.get(ch.name)!;
      const tb = infoB.get(ch.name)!;
      const acc = new TensorDeltaStats(ch.dtype);
      const differing = new Set(ch.changedChunks!);
      ta.chunks.forEach(([id, len], i) => {
        if (differing.has(i)) acc.addPair(readChunk(id), readChunk(tb.chunks[i][0]));
        else {
          skipped.add(id);
          acc.addEqual(len, sums.get(id));
        }
      });
      ch.stats = acc.finalize() as NumericTensorStats;
    }

    expect(names(d.tensors.unchanged)).toEqual(['head.bias', 'pos']);
    // Only the embedding rows of tokens seen in training moved: 5 of its 64 chunks hold them.
    const tok = d.tensors.changed.find((t) => t.name === 'tok.weight')!;
    expect(tok.chunks).toBe(64);
    expect(tok.changedChunks!.length).toBeLessThanOrEqual(5);
    expect(skipped.size).toBeGreaterThanOrEqual(59);
    for (const id of reads) expect(skipped.has(id), `read an equal chunk ${id}`).toBe(false);
    const pairedReads = d.tensors.changed.reduce((n, t) => n + 2 * t.changedChunks!.length, 0);
    expect(reads.length).toBe(pairedReads);

    for (const ch of d.tensors.changed) {
      const want = mlp.expected[ch.name];
      const s = ch.stats!;
      expect(s.changed, ch.name).toBe(want.changed);
      for (const k of ['maxAbsDelta', 'meanAbsDelta', 'l2Delta', 'relL2', 'cosine', 'normA', 'normB'] as const) {
        const w = want[k];
        if (w === null) expect(s[k], `${ch.name} ${k}`).toBeNull();
        else expect(Math.abs((s[k] as number) - w), `${ch.name} ${k}`).toBeLessThanOrEqual(1e-5 * Math.abs(w));
      }
    }
  });
});
