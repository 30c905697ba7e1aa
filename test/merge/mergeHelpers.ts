/**
 * Shared pieces of the merge tests: repositories driven through the library in process, the
 * fixtures of fixtures/merge (a small trained model and two fine-tunes), safetensors read back
 * tensor by tensor, and the PyTorch reference run once per batch of cases.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { MergeKnobs } from '../../src/merge/recipe.js';
import { commitFiles } from '../../src/repo/commit.js';
import { checkout } from '../../src/repo/checkout.js';
import { Repository } from '../../src/repo/repository.js';
import { FIXTURES, ROOT, tempDir } from '../e2e/helpers.js';

export const MERGE_FIXTURES = path.join(FIXTURES, 'merge');
export const PYTHON = '/usr/bin/python3';
export const HAVE_TORCH = spawnSync(PYTHON, ['-c', 'import torch, numpy'], { encoding: 'utf8' }).status === 0;

/** A repository with a small chunk size, so every tensor of the fixtures spans several chunks. */
export async function newRepo(chunkSize = 4096): Promise<Repository> {
  const dir = await tempDir('ckpt-merge-');
  return Repository.init(dir, { chunkSize, author: 'merge-test', clock: tickingClock() });
}

/** Strictly increasing times, so history order never depends on the speed of the machine. */
function tickingClock(): () => number {
  let t = Date.UTC(2026, 0, 1);
  return () => (t += 1000);
}

/** Copies `src` into the work tree as `name` and commits it (on `branch` when given). */
export async function commitAs(repo: Repository, src: string | Uint8Array, name: string, message: string, branch?: string): Promise<string> {
  const dest = path.join(repo.root, name);
  await fs.mkdir(path.dirname(dest), { recursive: true });
  if (typeof src === 'string') await fs.copyFile(src, dest);
  else await fs.writeFile(dest, src);
  const r = await commitFiles(repo, [dest], { message, ...(branch ? { branch } : {}) });
  return r.id;
}

/** Checks a revision's only file out to `out` (a path outside the work tree's own files). */
export async function checkoutTo(repo: Repository, rev: string, out: string): Promise<string> {
  await checkout(repo, rev, { output: out });
  return out;
}

export interface StTensor {
  dtype: string;
  shape: number[];
  data: Buffer;
}

/** The tensors of a safetensors file, by name. */
export function readSafetensors(file: string): Map<string, StTensor> {
  const raw = readFileSync(file);
  const n = Number(raw.readBigUInt64LE(0));
  const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, StTensor>();
  for (const [name, h] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: h.dtype, shape: h.shape, data: raw.subarray(8 + n + h.data_offsets[0], 8 + n + h.data_offsets[1]) });
  }
  return out;
}

/** A merge as the reference computes it: the recipe's knobs, the input files and ckpt's output file. */
export interface ReferenceCase extends MergeKnobs {
  method: string;
  inputs: string[];
  base?: string | null;
  output: string;
}

export interface ReferenceResult {
  tensors: Record<string, { ulp: number; n: number; nan_mismatch: number }>;
  missing: string[];
}

/** Runs test/merge/torch_reference.py on the cases; one PyTorch start-up for all of them. */
export function torchReference(cases: ReferenceCase[]): ReferenceResult[] {
  const r = spawnSync(PYTHON, [path.join(ROOT, 'test', 'merge', 'torch_reference.py')], {
    input: JSON.stringify(cases),
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: '1' },
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`torch_reference.py failed:\n${r.stderr}`);
  return JSON.parse(r.stdout) as ReferenceResult[];
}
