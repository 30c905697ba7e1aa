/**
 * Acceptance 4: a commit killed at any moment (SIGKILL: no cleanup runs) leaves the store with
 * its old history intact and usable. Write order (packs, index, metadata, ref) and atomic
 * renames are what make this hold; this test kills real `ckpt commit` processes at random
 * moments over a 100 MiB checkpoint and checks the history after each kill. A commit writes only
 * the chunks that changed and spends most of its time reading and hashing, so halving the file
 * (it was 200 MiB) left about as many kills landing mid-write (3 of 20 at 200 MiB; 3 to 6 at 100) for
 * half the bytes read, hashed and checked out.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  b3sum,
  ckptJson,
  cleanupTempDirs,
  HAVE_B3SUM,
  newRepo,
  prng,
  randomF32,
  sha256File,
  start,
  tempDir,
  writeBigSafetensors,
  type BigTensor,
} from './helpers.js';

afterAll(cleanupTempDirs);

const TENSORS = 50;
const ELEMENTS = 1 << 19; // 2 MiB of F32 each: 100 MiB in all
const TRIALS = 20;
const CHANGED_PER_TRIAL = 3;

interface Version {
  id: string;
  sha: string;
}

/** A digest computed outside ckpt: the reference b3sum (native, fast) or else sha256. */
const digest = async (file: string) => (HAVE_B3SUM ? b3sum(file)! : sha256File(file));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('crash safety', () => {
  it(`${TRIALS} commits SIGKILLed at random moments never corrupt the history`, { timeout: 400_000 }, async () => {
    const t0 = Date.now();
    const dir = await newRepo();
    const outDir = await tempDir('ckpt-e2e-out-');
    const file = path.join(dir, 'model.safetensors');
    const rand = prng(20240601);
    const tensors: BigTensor[] = Array.from({ length: TENSORS }, (_, i) => ({ name: `blocks.${i}.weight`, count: ELEMENTS, seed: i + 1 }));
    const { offsets } = await writeBigSafetensors(file, tensors);
    const history: Version[] = []; // oldest first

    /** Rewrites a few tensors in place: a new version of the checkpoint, as training would write. */
    const modify = async () => {
      const fh = await fs.open(file, 'r+');
      try {
        for (let k = 0; k < CHANGED_PER_TRIAL; k++) {
          const i = rand() % TENSORS;
          tensors[i].seed += 1000;
          await fh.write(randomF32(tensors[i].seed, ELEMENTS), 0, ELEMENTS * 4, offsets[i]);
        }
      } finally {
        await fh.close();
      }
      return digest(file);
    };

    // spawned like the commits that get killed, so the measured durations include Node's start-up
    // and the kill delays spread over the commit's work, not over the start-up alone
    const commit = async (compress: boolean, message: string) => {
      const began = Date.now();
      const r = await start(dir, ['commit', 'model.safetensors', '-m', message, '--json', ...(compress ? [] : ['--no-compress'])]).done;
      expect(r.code, r.stderr).toBe(0);
      return { id: JSON.parse(r.stdout).id as string, ms: Date.now() - began };
    };

    const logIds = async () => (await ckptJson<{ id: string; parents: string[] }[]>(dir, 'log')).map((e) => e.id);

    const checkOut = async (v: Version, name: string) => {
      const out = path.join(outDir, name);
      await ckptJson(dir, 'checkout', v.id, '-o', out);
      expect(await digest(out), `checkout of ${v.id.slice(0, 12)}`).toBe(v.sha);
      await fs.rm(out);
    };

    history.push({ id: (await commit(false, 'base')).id, sha: await digest(file) });
    // the typical duration of a commit of a changed checkpoint in each mode: measured first, then
    // the median of every complete commit, so the kills spread over the whole commit
    const durations: Record<'plain' | 'zstd', number[]> = { plain: [], zstd: [] };
    const mode = (compress: boolean) => (compress ? 'zstd' : 'plain');
    for (const compress of [false, true]) {
      const sha = await modify();
      const c = await commit(compress, `measure ${mode(compress)}`);
      durations[mode(compress)].push(c.ms);
      history.push({ id: c.id, sha });
    }

    const outcomes = { killedNoCommit: 0, killedAfterRef: 0, finished: 0, killedMidWrite: 0 };
    const storeFiles = async () => [
      ...(await fs.readdir(path.join(dir, '.ckpt', 'objects', 'packs'))),
      ...(await fs.readdir(path.join(dir, '.ckpt', 'tmp'))),
    ];
    for (let trial = 0; trial < TRIALS; trial++) {
      const compress = trial % 4 === 3;
      const sha = await modify();
      const prev = history[history.length - 1];
      const filesBefore = new Set(await storeFiles());
      const delay = (rand() / 0x1_0000_0000) * median(durations[mode(compress)]);
      const run = start(dir, ['commit', 'model.safetensors', '-m', `trial ${trial}`, '--json', ...(compress ? [] : ['--no-compress'])]);
      const timer = setTimeout(() => run.child.kill('SIGKILL'), delay);
      const r = await run.done;
      clearTimeout(timer);
      if (r.signal !== 'SIGKILL') expect(r.code, `trial ${trial}: ${r.stderr}`).toBe(0);

      // the history is the old one, or the old one plus the new commit: nothing else
      const ids = await logIds();
      const known = history.map((v) => v.id).reverse();
      if (ids[0] === prev.id) {
        expect(ids).toEqual(known);
        expect(r.signal, `trial ${trial}: the commit succeeded but HEAD did not move`).toBe('SIGKILL');
        outcomes.killedNoCommit++;
        // a pack or temporary file left behind: the kill landed while the commit was writing
        if ((await storeFiles()).some((f) => !filesBefore.has(f))) outcomes.killedMidWrite++;
      } else {
        expect(ids.slice(1), `trial ${trial}: history below the new head`).toEqual(known);
        history.push({ id: ids[0], sha });
        if (r.signal === 'SIGKILL') outcomes.killedAfterRef++;
        else outcomes.finished++;
      }
      await Promise.all([checkOut(history[0], 'first'), checkOut(history[history.length - 1], 'latest')]);

      // and the store takes the commit again (stale locks and half-written packs do not block it)
      const again = await commit(compress, `trial ${trial} again`);
      durations[mode(compress)].push(again.ms);
      history.push({ id: again.id, sha }); // its parent is checked by the next trial's log
    }

    // every commit ever made still checks out exactly
    expect(await logIds()).toEqual(history.map((v) => v.id).reverse());
    for (let i = 0; i < history.length; i += 3) {
      await Promise.all(history.slice(i, i + 3).map((v, k) => checkOut(v, `all-${i + k}`)));
    }
    console.log(
      `crash: ${TRIALS} trials (median commit ${median(durations.plain)} ms plain, ${median(durations.zstd)} ms zstd): ` +
        `${outcomes.killedNoCommit} killed before the ref moved (${outcomes.killedMidWrite} of them while writing), ` +
        `${outcomes.killedAfterRef} killed after it moved, ` +
        `${outcomes.finished} finished before the kill; ${history.length} commits verified in ${Math.round((Date.now() - t0) / 1000)} s`,
    );
    expect(outcomes.killedNoCommit + outcomes.killedAfterRef + outcomes.finished).toBe(TRIALS);
    expect(outcomes.killedNoCommit).toBeGreaterThan(0);
  });
});
