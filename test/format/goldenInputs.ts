/**
 * The fixed inputs of the pinned-format tests: small values built from integers and a seeded
 * PRNG only, so they are the same on every machine and Node version.
 */
import type { Commit, Manifest, Tree } from '../../src/core/objects.js';
import { mulberry32 } from '../../src/core/seededRandom.js';
import type { ChunkRecord } from '../../src/store/packFormat.js';

const id = (c: string) => c.repeat(64);

export const MANIFEST: Manifest = {
  type: 'manifest',
  format: 'safetensors',
  size: 4168,
  hash: id('1'),
  chunkSize: 1 << 20,
  segments: [
    { t: 'bytes', len: 72, chunks: [[id('2'), 72]] },
    { t: 'tensor', name: 'w', dtype: 'F32', shape: [32, 32], len: 4096, hash: id('3'), chunks: [[id('4'), 4096]], sumsq: [12.5] },
  ],
};

export const TREE: Tree = {
  type: 'tree',
  files: {
    'model.safetensors': { manifest: id('5'), size: 4168, hash: id('1'), format: 'safetensors' },
    'a/tokenizer.bin': { manifest: id('6'), size: 70000, hash: id('7'), format: 'opaque' },
  },
};

export const COMMIT: Commit = {
  type: 'commit',
  tree: id('8'),
  parents: [id('9')],
  message: 'step 1000',
  author: 'golden <golden@test>',
  time: 1_764_000_000_000,
  meta: { step: 1000, epoch: 2, metrics: { val_loss: 0.3125, acc: -1.5 }, params: { lr: 0.0005, opt: 'adamw', ema: true } },
  code: { commit: 'c'.repeat(40), branch: 'main', dirty: true, changed: ['train.py'] },
};

export const RECORDS: ChunkRecord[] = [
  { id: id('a'), offset: 8, stored: 100, raw: 4096, codec: 2, planes: 4 },
  { id: id('b'), offset: 108, stored: 70000, raw: 70000, codec: 0, planes: 1 },
  { id: id('c'), offset: 70108, stored: 60, raw: 4096, codec: 4, planes: 4, base: id('a') },
];

/** 64 float32 weights (exact binary fractions) and a base with every third one a step away. */
export function codecInput(): { raw: Uint8Array; base: Uint8Array } {
  const next = mulberry32(7);
  const f = Float32Array.from({ length: 64 }, () => ((next() % 2001) - 1000) / 16384);
  const raw = new Uint8Array(f.buffer);
  const bits = new Uint32Array(f.buffer.slice(0));
  for (let i = 0; i < bits.length; i += 3) bits[i] += (i % 2 ? 1 : -1) * (1 + (i % 5));
  return { raw, base: new Uint8Array(bits.buffer) };
}

/** 1 MiB of seeded bytes for the gear chunker. */
export function gearInput(): Uint8Array {
  const next = mulberry32(42);
  const d = new Uint8Array(1 << 20);
  const w = new DataView(d.buffer);
  for (let i = 0; i < d.length; i += 4) w.setUint32(i, next(), true);
  return d;
}
