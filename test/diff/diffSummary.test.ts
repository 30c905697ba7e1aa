import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ChunkRef } from '../../src/core/objects.js';
import { groupPrefix, summarizeDiff } from '../../src/diff/diffSummary.js';
import { diffStates, type StateDiff, type StateView, type TensorInfo } from '../../src/diff/stateDiff.js';
import type { NumericTensorStats, TensorStats } from '../../src/diff/tensorDeltaStats.js';

function tensor(name: string, id: string, shape: number[], dtype = 'F32'): TensorInfo {
  const elements = shape.reduce((n, d) => n * d, 1);
  return { name, dtype, shape, len: elements * 4, chunks: [[id, elements * 4] as ChunkRef] };
}
const state = (tensors: TensorInfo[]): StateView => ({ files: { m: { format: 'safetensors', size: 0, hash: tensors.map((t) => t.chunks[0][0]).join(), tensors } } });

function numeric(p: Partial<NumericTensorStats> & { elements: number }): NumericTensorStats {
  return {
    kind: 'numeric',
    dtype: 'F32',
    changed: p.elements,
    changedFraction: 1,
    maxAbsDelta: 1,
    meanAbsDelta: 1,
    l2Delta: 1,
    relL2: 1,
    cosine: 0,
    normA: 1,
    normB: 1,
    nanAppeared: 0,
    infAppeared: 0,
    ...p,
  };
}

describe('groupPrefix', () => {
  it('takes up to depth components, never the whole name', () => {
    expect(groupPrefix('blocks.3.attn.q.weight', 2)).toBe('blocks.3.');
    expect(groupPrefix('blocks.3.attn.q.weight', 3)).toBe('blocks.3.attn.');
    expect(groupPrefix('head.weight', 2)).toBe('head.');
    expect(groupPrefix('scale', 2)).toBe('');
    expect(groupPrefix('blocks.3.w', 0)).toBe('');
  });
});

describe('summarizeDiff', () => {
  const a = state([
    tensor('blocks.0.w', 'a0', [10]),
    tensor('blocks.0.b', 'b0', [2]),
    tensor('blocks.10.w', 'a10', [10]),
    tensor('blocks.2.w', 'a2', [10]),
    tensor('head.w', 'h', [4]),
    tensor('gone', 'g', [3]),
    tensor('q.w', 'q', [8], 'Q4_0'),
  ]);
  const b = state([
    tensor('blocks.0.w', 'A0', [10]),
    tensor('blocks.0.b', 'b0', [2]),
    tensor('blocks.10.w', 'A10', [10]),
    tensor('blocks.2.w', 'A2', [10]),
    tensor('head.w', 'h', [2, 2]),
    tensor('lora.a', 'l', [5]),
    tensor('q.w', 'Q', [8], 'Q4_0'),
  ]);

  function withStats(): StateDiff<TensorStats> {
    const d = diffStates<TensorStats>(a, b);
    const stats: Record<string, TensorStats> = {
      'blocks.0.w': numeric({ elements: 10, changed: 4, l2Delta: 3, normA: 4, relL2: 0.75 }),
      'blocks.10.w': numeric({ elements: 10, changed: 10, l2Delta: 1, normA: 10, relL2: 0.1 }),
      'blocks.2.w': numeric({ elements: 10, changed: 1, l2Delta: 1, normA: 0, relL2: null, cosine: null }),
      'q.w': { kind: 'bytes', dtype: 'Q4_0', bytes: 18, bytesChanged: 3, changedFraction: 3 / 18 },
    };
    for (const t of d.tensors.changed) t.stats = stats[t.name];
    return d;
  }

  it('groups by prefix in numeric order with counts and parameter-weighted relative change', () => {
    const s = summarizeDiff(withStats(), { groupDepth: 2 });
    expect(s.groupDepth).toBe(2);
    expect(s.groups.map((g) => g.prefix)).toEqual(['', 'blocks.0.', 'blocks.2.', 'blocks.10.', 'head.', 'lora.', 'q.']);
    const by = Object.fromEntries(s.groups.map((g) => [g.prefix, g]));
    expect(by['blocks.0.']).toEqual({ prefix: 'blocks.0.', tensors: 2, changed: 1, restructured: 0, params: 12, paramsChanged: 4, relChange: 0.75 });
    // A zero tensor that moved: the change relative to nothing is unbounded.
    expect(by['blocks.2.'].relChange).toBeNull();
    expect(by['head.']).toMatchObject({ tensors: 1, changed: 0, restructured: 1, params: 4, paramsChanged: 0, relChange: null });
    expect(by['']).toMatchObject({ tensors: 1, restructured: 1, params: 3, paramsChanged: 3 });
    expect(by['lora.']).toMatchObject({ tensors: 1, restructured: 1, paramsChanged: 5 });
    // Quantized: counted as changed, no element figures.
    expect(by['q.']).toMatchObject({ tensors: 1, changed: 1, paramsChanged: 0, relChange: null });
    expect(s.total).toMatchObject({ prefix: '', tensors: 8, changed: 4, restructured: 3, params: 52, paramsChanged: 23 });
    // sqrt((9 + 1 + 1) / (16 + 100 + 0))
    expect(s.total.relChange).toBeCloseTo(Math.sqrt(11 / 116), 15);
  });

  it('top K by relL2 descending, a change from zero first, ties by name, element statistics only', () => {
    const d = withStats();
    const s = summarizeDiff(d, { top: 2 });
    expect(s.top.map((t) => [t.name, t.relL2])).toEqual([
      ['blocks.2.w', null],
      ['blocks.0.w', 0.75],
    ]);
    const tie = d.tensors.changed.find((t) => t.name === 'blocks.10.w')!;
    tie.stats = numeric({ elements: 10, relL2: 0.75 });
    expect(summarizeDiff(d, { top: 10 }).top.map((t) => t.name)).toEqual(['blocks.2.w', 'blocks.0.w', 'blocks.10.w']);
  });

  it('identical states summarize to no change', () => {
    const s = summarizeDiff(diffStates<TensorStats>(a, a));
    expect(s.total).toEqual({ prefix: '', tensors: 7, changed: 0, restructured: 0, params: 47, paramsChanged: 0, relChange: null });
    expect(s.top).toEqual([]);
  });
});

describe('summarizeDiff over the training run, against torch', () => {
  it('relative change by module matches the figures computed at fixture time', () => {
    const dir = new URL('../../fixtures/diff/', import.meta.url);
    const mlp: {
      tensors: { name: string; dtype: string; shape: number[]; len: number }[];
      expected: Record<string, NumericTensorStats>;
      groupRelChangeDepth2: Record<string, number | null>;
    } = JSON.parse(readFileSync(new URL('mlp/mlp.json', dir), 'utf8'));
    const view = (side: string): StateView =>
      state(
        mlp.tensors.map((t) => ({
          ...t,
          chunks: [[mlp.expected[t.name].changed ? `${side}:${t.name}` : t.name, t.len] as ChunkRef],
        })),
      );
    const d = diffStates<TensorStats>(view('a'), view('b'));
    for (const t of d.tensors.changed) t.stats = { ...mlp.expected[t.name], kind: 'numeric', dtype: t.dtype };
    const s = summarizeDiff(d, { groupDepth: 2, top: 3 });
    for (const g of s.groups) {
      const want = mlp.groupRelChangeDepth2[g.prefix];
      if (want === undefined || want === null) expect(g.relChange, g.prefix).toBeNull();
      else expect(Math.abs(g.relChange! - want) / want, g.prefix).toBeLessThanOrEqual(1e-12);
    }
    expect(s.groups.map((g) => g.prefix)).toEqual(['', 'blocks.0.', 'blocks.1.', 'embed.', 'head.', 'tok.']);
    expect(s.top.map((t) => t.name)).toEqual(['blocks.0.norm.bias', 'blocks.0.norm.num_batches_tracked', 'blocks.0.norm.running_mean']);
  });
});
