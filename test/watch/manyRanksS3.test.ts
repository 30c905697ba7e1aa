/**
 * Acceptance 5 on an S3 remote (moto on loopback): every rank has a store of its own (as on its
 * own machine), commits its part there and pushes it; the push combines on the remote, racing
 * the other ranks through S3's conditional writes. All 10 rounds run as real processes (`ckpt
 * commit --part` then `ckpt push origin refs/parts/G/R`), three rounds at a time. Each round must make exactly one
 * commit on the remote with all 16 files byte-exact; a round whose rank never pushes makes none,
 * and `ckpt status --remote` names the missing rank.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/core/seededRandom.js';
import { checkout } from '../../src/repo/checkout.js';
import { partRef } from '../../src/repo/parts.js';
import { Repository } from '../../src/repo/repository.js';
import { cleanupTempDirs, newRepo, tempDir } from '../e2e/helpers.js';
import { run, runJson, runOk, startRemote, type TestRemote } from '../e2e/remoteHelpers.js';
import { readTree } from './watchHelpers.js';

const RANKS = 4;
const SHARDS = 4;
let remote: TestRemote;

beforeAll(async () => {
  remote = await startRemote('s3');
});
afterAll(async () => {
  await remote?.stop();
  await cleanupTempDirs();
});

async function writeShards(repo: string, round: string, rank: number): Promise<string[]> {
  const files: string[] = [];
  for (let s = 0; s < SHARDS; s++) {
    const f = path.join(repo, 'ckpts', round, `zero_pp_rank_${rank}_mp_rank_00_shard${s}.bin`);
    await fs.mkdir(path.dirname(f), { recursive: true });
    await fs.writeFile(f, randomBytes(20_000 + 1000 * rank + s));
    files.push(f);
  }
  return files;
}

describe('many ranks, one commit, through an S3 remote', () => {
  it('rounds of 4 ranks pushing their parts make one whole commit each; a missing rank is named', async (ctx) => {
    // the loopback S3 server must honour conditional writes (moto) for the race to be tested
    if (!remote.s3?.conditionalWrites) return ctx.skip();
    Object.assign(process.env, remote.env);
    const url = remote.newUrl();
    const ranks = await Promise.all(Array.from({ length: RANKS }, () => newRepo()));
    await Promise.all(ranks.map((r) => runOk(r, remote.env, 'remote', 'add', 'origin', url, ...remote.args)));
    const rnd = seededRandom(9);
    const written = new Map<string, Map<string, Buffer>>();
    const remember = async (round: string, files: string[], repo: string) => {
      const m = written.get(round) ?? new Map<string, Buffer>();
      for (const f of files) m.set(path.relative(repo, f), await fs.readFile(f));
      written.set(round, m);
    };

    // every round: 4 real processes (`ckpt commit --part`, then `ckpt push`), started in random
    // order with random delays; three rounds at a time, so ranks of different rounds race on the
    // remote branch too
    const rankRound = async (rank: number, round: string, delayMs: number, pushIt = true) => {
      const files = await writeShards(ranks[rank], round, rank);
      await remember(round, files, ranks[rank]);
      await new Promise((r) => setTimeout(r, delayMs));
      await runOk(ranks[rank], remote.env, 'commit', '--part', `${rank}/${RANKS}`, '--group', round, '-m', round, ...files.map((f) => path.relative(ranks[rank], f)));
      if (!pushIt) return;
      const pushed = await runJson(ranks[rank], remote.env, 'push', 'origin', partRef(round, rank));
      expect(pushed.parts[0].group).toBe(round);
    };
    const roundRanks = (round: string, killed?: number) =>
      [...Array(RANKS).keys()].sort(() => rnd() - 0.5).map((rank, i) => rankRound(rank, round, Math.floor(rnd() * 200 * i), rank !== killed));
    const rounds = Array.from({ length: 10 }, (_, i) => `round${i}`);
    for (let i = 0; i < rounds.length; i += 3) await Promise.all(rounds.slice(i, i + 3).flatMap((round) => roundRanks(round)));
    // a round whose rank 2 dies before pushing
    await Promise.all(roundRanks('round-killed', 2));

    const status = await runJson(ranks[0], remote.env, 'status', '--remote', 'origin');
    expect(status.parts).toEqual([{ group: 'round-killed', of: RANKS, present: [0, 1, 3], missing: [2] }]);
    expect((await run(ranks[0], remote.env, 'status', '--remote', 'origin')).stdout).toContain('many-rank commit round-killed: 3/4 parts, missing rank(s) 2');

    // what the remote holds: one commit per round, every file byte-exact
    const parent = await tempDir();
    await runOk(parent, remote.env, 'clone', url, 'check', ...remote.args);
    const check = path.join(parent, 'check');
    const log = await runJson(check, remote.env, 'log');
    const groups = log.map((c: { meta: { extra?: { group?: string } } }) => c.meta.extra?.group);
    expect([...groups].sort()).toEqual([...rounds].sort());
    const repo = await Repository.open(check);
    for (const c of log) {
      const round = c.meta.extra.group as string;
      const out = await tempDir();
      await checkout(repo, c.id, { output: out });
      const got = await readTree(out);
      const want = written.get(round)!;
      expect(got.size, round).toBe(RANKS * SHARDS);
      for (const [p, data] of want) expect(got.get(p)?.equals(data), `${round} ${p}`).toBe(true);
    }
  });
});
