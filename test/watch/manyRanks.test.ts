/**
 * Acceptance 5 (shared-folder store): 4 ranks each store 4 shard files with `ckpt commit --part`,
 * started in random order with random delays; each of 10 rounds must make exactly one commit
 * holding all 16 files byte-exact. A round whose rank is killed makes none, and `ckpt status`
 * names the missing rank.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/core/seededRandom.js';
import { checkout } from '../../src/repo/checkout.js';
import { Repository } from '../../src/repo/repository.js';
import { ckpt, ckptJson, cleanupTempDirs, newRepo, start, tempDir } from '../e2e/helpers.js';
import { history, readTree } from './watchHelpers.js';

afterAll(cleanupTempDirs);

const RANKS = 4;
const SHARDS = 4;

async function writeShards(repo: string, round: string): Promise<string[][]> {
  const byRank: string[][] = [];
  for (let r = 0; r < RANKS; r++) {
    const files: string[] = [];
    for (let s = 0; s < SHARDS; s++) {
      const f = path.join(repo, 'ckpts', round, `zero_pp_rank_${r}_mp_rank_00_shard${s}.bin`);
      await fs.mkdir(path.dirname(f), { recursive: true });
      await fs.writeFile(f, randomBytes(20_000 + 1000 * r + s));
      files.push(f);
    }
    byRank.push(files);
  }
  return byRank;
}

describe('many ranks, one commit', () => {
  it('10 rounds of 4 racing ranks make one whole commit each; a killed rank makes none and is named', async () => {
    const repo = await newRepo();
    const rnd = seededRandom(5);
    const rounds = Array.from({ length: 10 }, (_, i) => `round${i}`);
    const shards = new Map<string, string[][]>();
    for (const round of rounds) shards.set(round, await writeShards(repo, round));

    const runRound = async (round: string) => {
      const order = [...Array(RANKS).keys()].sort(() => rnd() - 0.5);
      await Promise.all(
        order.map(async (rank, i) => {
          await new Promise((r) => setTimeout(r, Math.floor(rnd() * 250 * i)));
          const files = shards.get(round)!.at(rank)!.map((f) => path.relative(repo, f));
          const r = await ckpt(repo, 'commit', '--part', `${rank}/${RANKS}`, '--group', round, '-m', `checkpoint ${round}`, ...files);
          expect(r.code, r.stderr).toBe(0);
        }),
      );
    };
    // five rounds at a time: ranks of different rounds race on the same branch too
    await Promise.all(rounds.slice(0, 5).map(runRound));
    await Promise.all(rounds.slice(5).map(runRound));

    // a round whose rank 2 dies before recording its part
    const killed = 'round-killed';
    shards.set(killed, await writeShards(repo, killed));
    const victim = start(repo, ['commit', '--part', `2/${RANKS}`, '--group', killed, '-m', killed, ...shards.get(killed)![2]]);
    victim.child.kill('SIGKILL');
    await victim.done;
    for (const rank of [3, 0, 1]) await ckptJson(repo, 'commit', '--part', `${rank}/${RANKS}`, '--group', killed, '-m', killed, ...shards.get(killed)![rank]);

    const commits = await history(repo);
    const groups = commits.map((c) => c.meta.extra?.group as string);
    expect([...groups].sort()).toEqual([...rounds].sort());
    const store = await Repository.open(repo);
    for (const c of commits) {
      const round = c.meta.extra!.group as string;
      const out = await tempDir();
      await checkout(store, c.id, { output: out });
      const got = await readTree(out);
      const want = shards.get(round)!.flat();
      expect(got.size, round).toBe(RANKS * SHARDS);
      for (const f of want) expect(got.get(path.relative(repo, f))?.equals(await fs.readFile(f)), f).toBe(true);
    }

    const status = await ckptJson(repo, 'status');
    expect(status.parts).toEqual([{ group: killed, of: RANKS, present: [0, 1, 3], missing: [2] }]);
    const text = await ckpt(repo, 'status');
    expect(text.stdout).toContain(`many-rank commit ${killed}: 3/4 parts, missing rank(s) 2`);
    // the parts that did arrive keep their data through a gc
    await ckptJson(repo, 'gc');
    const fsck = await ckptJson(repo, 'fsck', '--read-data');
    expect(fsck.ok, JSON.stringify(fsck.faults)).toBe(true);
    // the missing rank arrives late: the round is committed after all
    const late = await ckptJson(repo, 'commit', '--part', `2/${RANKS}`, '--group', killed, '-m', killed, ...shards.get(killed)![2]);
    expect(late.combined).toBe(true);
    expect((await ckptJson(repo, 'status')).parts).toBeUndefined();
  });
});
