/**
 * Acceptance 1: a real PyTorch loop (Debian's torch) saves every 10 steps for 100 steps while
 * `ckpt watch` runs beside it, in the Hugging Face Trainer folder layout, as Lightning names its
 * files, and as a plain torch.save loop, each rotating its checkpoints with a limit of 2. The log
 * must hold exactly 10 commits with the right steps and metrics, each checking out byte-identical
 * to the copy the loop kept; `latest` and `best:<metric>` restore folders ready to resume from.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkout } from '../../src/repo/checkout.js';
import { Repository } from '../../src/repo/repository.js';
import { cleanupTempDirs, newRepo, tempDir } from '../e2e/helpers.js';
import { PYTHON, TRAIN_LOOP, expectSameTree, history, startWatch, waitFor } from './watchHelpers.js';

interface Saved {
  name: string;
  step: number;
  metrics: Record<string, number>;
}

function train(cwd: string, layout: string, pause: number): Promise<Saved[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, [TRAIN_LOOP, layout, 'run', 'keep', '--pause', String(pause)], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('close', (code) => (code === 0 ? resolve((JSON.parse(out) as { saved: Saved[] }).saved) : reject(new Error(`train_loop ${layout} exited ${code}: ${err}`))));
  });
}

afterAll(cleanupTempDirs);

describe('ckpt watch beside a real training loop', () => {
  it('commits every checkpoint of a Trainer, a Lightning and a plain loop once, byte-exact, with steps and metrics', async () => {
    const layouts = [
      // the Trainer's folders are complete by their marker; files wait for --settle. Each loop keeps
      // 2 checkpoints, so one lives two pauses: 2 s pauses leave the watcher 4 s to commit it even
      // on a loaded machine (with 1.2 s, a commit slowed to 2.5 s lost checkpoint-80 to rotation)
      { layout: 'hf', pause: 2, metric: 'eval_loss' },
      { layout: 'lightning', pause: 2, metric: 'val_loss' },
      { layout: 'plain', pause: 2, metric: 'val_loss' },
    ];
    const runs = await Promise.all(
      layouts.map(async (l) => {
        const repo = await newRepo();
        await fs.mkdir(path.join(repo, 'run'));
        const w = startWatch(repo, 'run', '--interval', '0.25', '--settle', '1', '--allow-unsafe-pickle');
        let saved: Saved[] = [];
        try {
          saved = await train(repo, l.layout, l.pause);
          await waitFor(`${l.layout}: ${saved.length} commits\n${w.log()}`, () => w.commits() >= saved.length, 30_000);
          // a moment more: nothing else may come
          await new Promise((r) => setTimeout(r, 600));
        } finally {
          await w.stop();
        }
        return { ...l, repo, saved, log: w.log() };
      }),
    );
    for (const r of runs) {
      expect(r.saved, r.layout).toHaveLength(10);
      const store = await Repository.open(r.repo);
      const commits = await history(r.repo);
      expect(commits.map((c) => c.meta.step), `${r.layout}\n${r.log}`).toEqual(r.saved.map((s) => s.step));
      for (const [i, s] of r.saved.entries()) {
        const c = commits[i];
        for (const [k, v] of Object.entries(s.metrics)) expect(c.meta.metrics?.[k], `${r.layout} ${s.name} ${k}`).toBeCloseTo(v, 6);
        const out = await tempDir();
        const kept = path.join(r.repo, 'keep', s.name);
        if (r.layout === 'hf') {
          await checkout(store, c.id, { output: out });
          expect(await expectSameTree(out, kept), `${r.layout} ${s.name}`).toBeUndefined();
        } else {
          await checkout(store, c.id, { output: path.join(out, s.name) });
          expect((await fs.readFile(path.join(out, s.name))).equals(await fs.readFile(kept)), `${r.layout} ${s.name}`).toBe(true);
        }
      }
      // resume: the newest and the best checkpoint come back exactly as the loop wrote them
      const best = r.saved.reduce((a, b) => (b.metrics[r.metric] < a.metrics[r.metric] ? b : a));
      for (const [rev, want] of [['latest', r.saved[r.saved.length - 1]], [`best:${r.metric}`, best]] as const) {
        const out = path.join(await tempDir(), 'resume');
        if (r.layout === 'hf') {
          await checkout(store, rev, { output: out });
          expect(await expectSameTree(out, path.join(r.repo, 'keep', want.name)), rev).toBeUndefined();
        } else {
          await checkout(store, rev, { output: out });
          expect((await fs.readFile(out)).equals(await fs.readFile(path.join(r.repo, 'keep', want.name))), rev).toBe(true);
        }
      }
    }
  });
});
