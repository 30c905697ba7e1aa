/**
 * Acceptance 5: writers racing on one branch. The ref moves only by compare-and-swap, so every
 * commit that reports success is in the history, and a writer that cannot get in says so (exit 6,
 * naming the ref) instead of being dropped.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RefConflictError } from '../../src/core/errors.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { commitFiles } from '../../src/repo/commit.js';
import { Repository } from '../../src/repo/repository.js';
import { ckptJson, cleanupTempDirs, newRepo, randomF32, start, type RunResult } from './helpers.js';

afterAll(cleanupTempDirs);

const ROUNDS = 10;

async function writeModel(file: string, seed: number, elements = 262_144): Promise<void> {
  await fs.writeFile(file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [elements], data: randomF32(seed, elements) }]));
}

function refFile(dir: string): string {
  return readFileSync(path.join(dir, '.ckpt', 'refs', 'heads', 'main'), 'utf8');
}

describe('racing commits through the CLI', () => {
  it(`${ROUNDS} rounds of two simultaneous commits on one branch lose nothing`, async () => {
    const dir = await newRepo('--chunk-size', '65536');
    await writeModel(path.join(dir, 'base.safetensors'), 1);
    await ckptJson(dir, 'commit', 'base.safetensors', '-m', 'base');
    const landed: string[] = [];
    let refused = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const a = path.join(dir, `a${round}.safetensors`);
      const b = path.join(dir, `b${round}.safetensors`);
      await writeModel(a, 100 + round);
      await writeModel(b, 200 + round);
      const runs = [a, b].map((f) => start(dir, ['commit', path.basename(f), '-m', `round ${round} ${path.basename(f)}`, '--json']));
      const results: RunResult[] = await Promise.all(runs.map((r) => r.done));
      for (const r of results) {
        if (r.code === 0) {
          landed.push((JSON.parse(r.stdout) as { id: string }).id);
        } else {
          // the only acceptable failure: the ref moved under us, said clearly
          expect(r.code, r.stderr).toBe(6);
          expect(r.stderr).toMatch(/refs\/heads\/main/);
          refused++;
        }
      }
      expect(results.some((r) => r.code === 0)).toBe(true);

      const ref = refFile(dir);
      expect(ref).toMatch(/^[0-9a-f]{64}\n$/);
      const log = await ckptJson<{ id: string; parents: string[] }[]>(dir, 'log');
      expect(log[0].id).toBe(ref.trim());
      expect(log).toHaveLength(1 + landed.length);
      const ids = new Set(log.map((e) => e.id));
      for (const id of landed) expect(ids.has(id), `commit ${id} was reported but is not in the history`).toBe(true);
      // a linear chain: each commit's parent is the next entry
      for (let i = 0; i + 1 < log.length; i++) expect(log[i].parents).toEqual([log[i + 1].id]);
    }
    console.log(`race (CLI): ${landed.length} commits landed, ${refused} refused with exit 6, over ${ROUNDS} rounds`);
  });
});

describe('racing commits in one process', () => {
  async function setup(n: number): Promise<{ dir: string; files: string[] }> {
    const dir = await newRepo('--chunk-size', '65536');
    await writeModel(path.join(dir, 'base.safetensors'), 1);
    await ckptJson(dir, 'commit', 'base.safetensors', '-m', 'base');
    const files: string[] = [];
    for (let i = 0; i < n; i++) {
      files.push(path.join(dir, `m${i}.safetensors`));
      await writeModel(files[i], 300 + i, 65_536);
    }
    return { dir, files };
  }

  async function history(dir: string): Promise<string[]> {
    return (await ckptJson<{ id: string }[]>(dir, 'log')).map((e) => e.id);
  }

  it('concurrent commitFiles calls all land when retries suffice', async () => {
    const { dir, files } = await setup(6);
    const results = await Promise.all(
      files.map(async (f, i) => commitFiles(await Repository.open(dir), [f], { message: `m${i}`, compress: false, retries: 20 })),
    );
    const log = await history(dir);
    expect(log).toHaveLength(1 + files.length);
    for (const r of results) expect(log).toContain(r.id);
    expect(refFile(dir).trim()).toBe(log[0]);
  });

  it('without retries, losers get a RefConflictError naming the ref and winners are all in the history', async () => {
    const { dir, files } = await setup(4);
    const settled = await Promise.allSettled(
      files.map(async (f, i) => commitFiles(await Repository.open(dir), [f], { message: `m${i}`, compress: false, retries: 0 })),
    );
    const won = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.id] : []));
    const lost = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    expect(won.length).toBeGreaterThanOrEqual(1);
    for (const e of lost) {
      expect(e).toBeInstanceOf(RefConflictError);
      expect((e as RefConflictError).message).toMatch(/refs\/heads\/main/);
    }
    const log = await history(dir);
    expect(log).toHaveLength(1 + won.length);
    for (const id of won) expect(log).toContain(id);
    console.log(`race (library, no retries): ${won.length} won, ${lost.length} lost with RefConflictError`);
  });
});
