/**
 * Issue 11, acceptance 3: many writers, one store in S3 (moto on loopback). Four processes, each in
 * a work tree of its own as on its own machine, run `ckpt --store s3://... commit` onto one branch
 * at the same moment, ten rounds. The branch moves only by compare-and-swap, so a writer that loses
 * re-parents its commit onto the new head (or, out of retries, fails with E_REF_CONFLICT): every
 * commit reported made is in the branch's history, once, and checks out byte-exact, and
 * `fsck --read-data` finds the store whole. The second case runs the same while `ckpt gc` sweeps
 * the store over and over from a fifth process.
 */
import { createHash } from 'node:crypto';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { motoAvailable } from '../backend/s3Server.js';
import { cleanupTempDirs, randomF32, start, tempDir, type RunResult } from './helpers.js';
import { runIn } from './inProcess.js';
import { startStores, type TestStores } from './storeBackends.js';

const WRITERS = 4;
const ROUNDS = 10;

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Writer `w`'s model at round `r`: a tensor all writers share, one of its own, one that moves every round. */
function model(w: number, r: number): Uint8Array {
  const moving = new Float32Array(randomF32(1000 + w, 16 * 1024).buffer.slice(0));
  for (let i = 0; i < moving.length; i += 5) moving[i] += (r + 1) * 1e-2;
  return writeSafetensors([
    { name: 'embed.weight', dtype: 'F32', shape: [128, 128], data: randomF32(7, 128 * 128) },
    { name: `head.${w}.weight`, dtype: 'F32', shape: [64, 128], data: randomF32(100 + w, 64 * 128) },
    { name: 'block.weight', dtype: 'F32', shape: [128, 128], data: new Uint8Array(moving.buffer) },
  ]);
}

interface Made {
  id: string;
  writer: number;
  round: number;
  sha: string;
}

describe.skipIf(!motoAvailable())('four writers committing to one branch of an S3 store', () => {
  let stores: TestStores;
  beforeAll(async () => {
    stores = await startStores('s3');
  });
  afterAll(async () => {
    await stores?.stop();
    await cleanupTempDirs();
  });

  /** Runs the rounds against a new store; `during` runs beside them until they end. */
  async function race(name: string, during?: (url: string, env: Record<string, string>, over: () => boolean) => Promise<RunResult[]>) {
    const url = stores.newUrl(name);
    const env = { ...stores.env, CKPT_CACHE_DIR: await tempDir('ckpt-writers-cache-') };
    const admin = await tempDir('ckpt-writers-admin-');
    const init = await runIn(admin, ['--store', url, 'init', '--chunk-size', '65536'], env);
    expect(init.code, init.stderr).toBe(0);
    const trees = await Promise.all(Array.from({ length: WRITERS }, () => tempDir('ckpt-writer-')));
    const made: Made[] = [];
    const failures: RunResult[] = [];
    let over = false;
    const side = during?.(url, env, () => over);
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const shas = await Promise.all(
          trees.map(async (t, w) => {
            const bytes = model(w, round);
            await fs.writeFile(path.join(t, 'model.safetensors'), bytes);
            return sha(bytes);
          }),
        );
        // each writer has its own cache, as on a machine of its own
        const runs = trees.map((t, w) =>
          start(t, ['--store', url, 'commit', 'model.safetensors', '-m', `writer ${w} round ${round}`, '--step', String(round), '--json'], {
            ...env,
            CKPT_CACHE_DIR: path.join(env.CKPT_CACHE_DIR, `w${w}`),
          }).done,
        );
        for (const [w, r] of (await Promise.all(runs)).entries()) {
          if (r.code === 0) made.push({ id: JSON.parse(r.stdout).id, writer: w, round, sha: shas[w] });
          else {
            // the only way to lose is to be told so
            expect(r.code, r.stderr).toBe(6);
            expect(JSON.parse(r.stdout).error.code).toBe('E_REF_CONFLICT');
            failures.push(r);
          }
        }
      }
    } finally {
      over = true;
    }
    const sideRuns = (await side) ?? [];
    console.log(`${name}: ${made.length} commits made, ${failures.length} refused with E_REF_CONFLICT, ${sideRuns.length} gc runs beside them`);
    return { url, env, admin, made, failures, sideRuns };
  }

  async function check(url: string, env: Record<string, string>, admin: string, made: Made[]) {
    const log = await runIn(admin, ['--store', url, 'log', '--json'], env);
    expect(log.code, log.stderr).toBe(0);
    const history = JSON.parse(log.stdout) as { id: string; parents: string[] }[];
    const ids = history.map((c) => c.id);
    // the branch's reflog: one move per commit, and never two moves from the same commit (two
    // writers whose compare-and-swap both passed: the second overwrote the first's commit)
    const key = new URL(url).pathname.slice(1) + '/logs/refs/heads/main';
    const reflog = await (await stores.s3!.client.send(new GetObjectCommand({ Bucket: stores.s3!.bucket, Key: key }))).Body!.transformToString();
    const moves = reflog.trim().split('\n').map((l) => l.split(' ').slice(0, 2));
    const from = moves.map(([old]) => old);
    expect(from.filter((o, i) => from.indexOf(o) !== i), `moves from one commit twice:\n${reflog}`).toEqual([]);
    expect(moves.map(([, next]) => next).sort()).toEqual(made.map((m) => m.id).sort());
    // every commit made is on the branch, exactly once, and the branch holds nothing else
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(made.map((m) => m.id).sort());
    // a line: each commit's parent is the next one down
    for (const [i, c] of history.entries()) expect(c.parents).toEqual(i + 1 < history.length ? [history[i + 1].id] : []);
    const fsck = await runIn(admin, ['--store', url, 'fsck', '--read-data', '--json'], env);
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
    expect(JSON.parse(fsck.stdout).checked.commits).toBe(made.length);
    // the last round of every writer, and one earlier commit, check out byte-exact
    const last = made.filter((m) => m.round === ROUNDS - 1);
    for (const m of [...last, made[0]]) {
      const out = path.join(admin, `${m.id}.safetensors`);
      const co = await runIn(admin, ['--store', url, 'checkout', m.id, '-o', out], env);
      expect(co.code, co.stderr).toBe(0);
      expect(sha(await fs.readFile(out))).toBe(m.sha);
    }
  }

  // the two cases run side by side, each on a store of its own: half the wait of one after the other
  it.concurrent('10 rounds of 4 racing commits: none lost, the history a line, fsck --read-data clean', async () => {
    const { url, env, admin, made, failures } = await race('plain');
    // re-parenting is the rule; a refusal (out of retries) would be named, never silent
    expect(made.length + failures.length).toBe(WRITERS * ROUNDS);
    expect(made.length).toBeGreaterThanOrEqual(WRITERS * ROUNDS - 2);
    await check(url, env, admin, made);
  }, 600_000);

  it.concurrent('the same with gc sweeping the store again and again from a fifth process', async () => {
    const { url, env, admin, made, failures, sideRuns } = await race('gc', async (u, e, over) => {
      const gcDir = await tempDir('ckpt-writers-gc-');
      const runs: RunResult[] = [];
      while (!over()) {
        runs.push(await start(gcDir, ['--store', u, 'gc', '--json'], { ...e, CKPT_CACHE_DIR: path.join(e.CKPT_CACHE_DIR, 'gc') }).done);
        // a sweep every few seconds, each landing at another moment of a round
        await new Promise((r) => setTimeout(r, 2_000));
      }
      return runs;
    });
    expect(made.length + failures.length).toBe(WRITERS * ROUNDS);
    expect(made.length).toBeGreaterThanOrEqual(WRITERS * ROUNDS - 2);
    // gc really ran between and beside the commits, and every sweep succeeded
    expect(sideRuns.length).toBeGreaterThanOrEqual(2);
    for (const r of sideRuns) expect(r.code, r.stderr).toBe(0);
    await check(url, env, admin, made);
  }, 600_000);
});
