/**
 * A group name reused by a later checkpoint (a restarted job reaching the same step) must make a
 * new commit, not answer with the old one and drop the new parts; and parts recorded by two runs
 * of one job (attempt A's ranks 0 and 1, attempt B's rank 2) must never combine into one commit.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { ckpt, ckptJson, cleanupTempDirs, newRepo } from '../e2e/helpers.js';
import { history } from './watchHelpers.js';

afterAll(cleanupTempDirs);

async function shard(repo: string, name: string): Promise<string> {
  await fs.mkdir(path.join(repo, 'ckpts'), { recursive: true });
  await fs.writeFile(path.join(repo, 'ckpts', name), randomBytes(5000));
  return path.join('ckpts', name);
}

describe('many-rank groups: reuse and attempts', () => {
  it('a reused group name makes a new commit holding the new files, and exits 0 only then', async () => {
    const repo = await newRepo();
    const first: string[] = [];
    for (const rank of [0, 1]) first.push(await shard(repo, `rank${rank}.bin`));
    const a0 = await ckptJson(repo, 'commit', '--part', '0/2', '--group', 'step-500', '-m', 'run 1', first[0]);
    const a1 = await ckptJson(repo, 'commit', '--part', '1/2', '--group', 'step-500', '-m', 'run 1', first[1]);
    expect(a0.combined).toBe(false);
    expect(a1.combined).toBe(true);
    const old = a1.commit as string;

    // the job restarts and reaches step 500 again with new weights
    const second: string[] = [];
    for (const rank of [0, 1]) second.push(await shard(repo, `rank${rank}.bin`));
    const wanted = await Promise.all(second.map((f) => fs.readFile(path.join(repo, f))));
    await ckptJson(repo, 'commit', '--part', '0/2', '--group', 'step-500', '-m', 'run 2', second[0]);
    const b1 = await ckptJson(repo, 'commit', '--part', '1/2', '--group', 'step-500', '-m', 'run 2', second[1]);
    expect(b1.combined, 'the new parts were answered with the old commit').toBe(true);
    expect(b1.commit).not.toBe(old);
    const log = await history(repo);
    expect(log.map((c) => c.id)).toEqual([old, b1.commit]);

    // the new commit holds the new bytes, after gc too
    await ckptJson(repo, 'gc');
    const out = path.join(repo, 'out');
    await ckptJson(repo, 'checkout', b1.commit, '-o', out);
    for (const [i, f] of second.entries()) expect((await fs.readFile(path.join(out, f))).equals(wanted[i])).toBe(true);
    const store = await Repository.open(repo);
    const c = await store.readCommit(b1.commit);
    expect(c.meta.extra).toMatchObject({ group: 'step-500', parts: 2, partIds: [expect.any(String), expect.any(String)] });
  });

  it('parts of two attempts refuse to combine, naming the ranks; nothing is committed', async () => {
    const repo = await newRepo();
    const files = [];
    for (const rank of [0, 1, 2]) files.push(await shard(repo, `r${rank}.bin`));
    await ckptJson(repo, 'commit', '--part', '0/3', '--group', 'g', '--attempt', 'job-A', '-m', 'a', files[0]);
    await ckptJson(repo, 'commit', '--part', '1/3', '--group', 'g', '--attempt', 'job-A', '-m', 'a', files[1]);
    // attempt A's rank 2 died; attempt B's rank 2 arrives
    const r = await ckpt(repo, 'commit', '--part', '2/3', '--group', 'g', '--attempt', 'job-B', '-m', 'b', files[2], '--json');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rank\(s\) 0, 1 from attempt job-A.*rank\(s\) 2 from attempt job-B/);
    expect(await history(repo)).toEqual([]);

    // parts of one attempt still combine, and the commit records the attempt
    const repo2 = await newRepo();
    for (const rank of [0, 1, 2]) await shard(repo2, `r${rank}.bin`);
    let last;
    for (const rank of [0, 1, 2]) last = await ckptJson(repo2, 'commit', '--part', `${rank}/3`, '--group', 'g', '--attempt', 'job-A', '-m', 'a', files[rank]);
    expect(last.combined).toBe(true);
    const c = await (await Repository.open(repo2)).readCommit(last.commit);
    expect(c.meta.extra).toMatchObject({ attempt: 'job-A' });
  });

  it('the attempt id comes from --attempt, else CKPT_ATTEMPT, SLURM_JOB_ID or TORCHELASTIC_RUN_ID', async () => {
    const { attemptId } = await import('../../src/repo/parts.js');
    expect(attemptId('x', { SLURM_JOB_ID: '7' })).toBe('x');
    expect(attemptId(undefined, { CKPT_ATTEMPT: 'c', SLURM_JOB_ID: '7' })).toBe('c');
    expect(attemptId(undefined, { SLURM_JOB_ID: '7', TORCHELASTIC_RUN_ID: 't' })).toBe('7');
    expect(attemptId(undefined, { TORCHELASTIC_RUN_ID: 't' })).toBe('t');
    expect(attemptId(undefined, {})).toBeUndefined();
  });
});
