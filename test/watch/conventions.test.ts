/**
 * Completeness by the writing tool's convention, and step and metrics without the user passing
 * them. A watcher with a timing rule too long to fire (--settle 1 h) looks at each layout while it
 * is incomplete (nothing may be committed) and after its tool marks it complete (one commit).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Repository } from '../../src/repo/repository.js';
import { metaFromName } from '../../src/watch/checkpointNames.js';
import { candidateOf, discoverCheckpoints } from '../../src/watch/discoverCheckpoints.js';
import { linkSnapshot } from '../../src/watch/linkSnapshot.js';
import { Watcher } from '../../src/watch/watcher.js';
import { cleanupTempDirs, newRepo } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

const put = async (f: string, data: string | Buffer = Buffer.alloc(3000, 7)) => {
  await fs.mkdir(path.dirname(f), { recursive: true });
  await fs.writeFile(f, data);
};

interface Layout {
  name: string;
  /** Writes the checkpoint without its completion mark; returns the checkpoint's path. */
  start(run: string): Promise<string>;
  finish(run: string): Promise<void>;
  step?: number;
  metrics?: Record<string, number>;
}

const layouts: Layout[] = [
  {
    name: 'Hugging Face Trainer',
    start: async (run) => (await put(path.join(run, 'checkpoint-500', 'model.safetensors.bin')), path.join(run, 'checkpoint-500')),
    finish: (run) =>
      put(path.join(run, 'checkpoint-500', 'trainer_state.json'), JSON.stringify({ global_step: 500, epoch: 2, best_metric: 0.3, log_history: [{ loss: 0.9, step: 400 }, { loss: 0.5, step: 500 }, { eval_loss: 0.4, step: 500 }] })),
    step: 500,
    metrics: { loss: 0.5, eval_loss: 0.4, best_metric: 0.3 },
  },
  {
    name: 'DeepSpeed',
    start: async (run) => (await put(path.join(run, 'global_step300', 'mp_rank_00_model_states.bin')), await put(path.join(run, 'latest'), 'global_step200'), path.join(run, 'global_step300')),
    finish: (run) => put(path.join(run, 'latest'), 'global_step300'),
    step: 300,
  },
  {
    name: 'Megatron',
    start: async (run) => (await put(path.join(run, 'iter_0000700', 'mp_rank_00', 'model_optim_rng.bin')), path.join(run, 'iter_0000700')),
    finish: (run) => put(path.join(run, 'latest_checkpointed_iteration.txt'), '700\n'),
    step: 700,
  },
  {
    name: 'torch.distributed.checkpoint',
    start: async (run) => (await put(path.join(run, 'step_900', '__0_0.distcp')), await put(path.join(run, 'step_900', '__1_0.distcp')), path.join(run, 'step_900')),
    // .metadata is written last, by the coordinator; a folder with it is DCP whatever its name
    finish: (run) => put(path.join(run, 'step_900', '.metadata'), Buffer.alloc(100, 1)),
    step: 900,
  },
  {
    name: 'Orbax',
    start: async (run) => (await put(path.join(run, '1000.orbax-checkpoint-tmp-1234', 'state', 'data.bin')), path.join(run, '1000')),
    finish: async (run) => {
      await fs.rename(path.join(run, '1000.orbax-checkpoint-tmp-1234'), path.join(run, '1000'));
    },
    step: 1000,
  },
  {
    name: 'a file renamed from its temporary name',
    start: async (run) => (await put(path.join(run, 'model.safetensors.tmp')), path.join(run, 'model.bin')),
    finish: (run) => fs.rename(path.join(run, 'model.safetensors.tmp'), path.join(run, 'model.bin')),
  },
];

describe('completion conventions', () => {
  it.each(layouts)('$name: nothing before the mark, one commit after it', async (l) => {
    const dir = await newRepo();
    const run = path.join(dir, 'run');
    await fs.mkdir(run);
    const repo = await Repository.open(dir);
    const w = await Watcher.open(repo, { dir: run, intervalMs: 0, settleMs: 3600_000, log: () => undefined });
    const where = await l.start(run);
    expect(await w.look()).toEqual([]);
    expect(await w.look()).toEqual([]);
    await l.finish(run);
    const made = [...(await w.look()), ...(await w.look())];
    expect(made.map((c) => c.source)).toEqual([path.relative(dir, where)]);
    if (l.step !== undefined) expect(made[0].meta.step).toBe(l.step);
    if (l.metrics) expect(made[0].meta.metrics).toEqual(l.metrics);
    // every file of the checkpoint, hidden ones too (DCP's .metadata), relative to the folder
    const tree = await repo.readTree((await repo.readCommit(made[0].id)).tree);
    const files = (await fs.stat(where)).isDirectory() ? ((await fs.readdir(where, { recursive: true, withFileTypes: true })) as import('node:fs').Dirent[]).filter((e) => e.isFile()).map((e) => path.relative(where, path.join(e.parentPath ?? e.path, e.name))) : [path.basename(where)];
    expect(Object.keys(tree.files).sort()).toEqual(files.sort());
    expect([...(await w.look()), ...(await w.look())]).toEqual([]);
    // a new watcher (a restart) reads the record back from the store: nothing to do
    const again = await Watcher.open(repo, { dir: run, intervalMs: 0, settleMs: 0, once: true, log: () => undefined });
    expect(await again.look()).toEqual([]);
  });

  it('with --keep-last and --keep-best, prunes and gcs after each commit while the history stays whole', async () => {
    const dir = await newRepo();
    const run = path.join(dir, 'run');
    const repo = await Repository.open(dir);
    const lines: string[] = [];
    const w = await Watcher.open(repo, { dir: run, intervalMs: 0, settleMs: 0, once: true, retention: { keepLast: 2, keepBest: 1, metric: 'val_loss' }, log: (l) => lines.push(l) });
    const losses = [0.5, 0.2, 0.6, 0.7, 0.8, 0.9];
    for (const [i, loss] of losses.entries()) {
      await put(path.join(run, `epoch=${i}-step=${(i + 1) * 100}-val_loss=${loss}.ckpt`), Buffer.alloc(50_000, i + 1));
      expect(await w.look()).toHaveLength(1);
    }
    expect(lines).toHaveLength(losses.length);
    const log = [];
    for (let id = await repo.headCommit(); id; id = (await repo.readCommit(id)).parents[0] ?? null) log.push(id);
    expect(log).toHaveLength(losses.length);
    const { checkout } = await import('../../src/repo/checkout.js');
    // kept: the last two and the best (step 200); the others' data is gone, their history is not
    const steps = losses.map((_, i) => (i + 1) * 100).reverse();
    for (const [i, id] of log.entries()) {
      const kept = i < 2 || steps[i] === 200;
      const out = path.join(dir, `out-${i}.ckpt`);
      if (kept) await expect(checkout(repo, id, { output: out })).resolves.toBeTruthy();
      else await expect(checkout(repo, id, { output: out })).rejects.toMatchObject({ code: 'E_PRUNED' });
    }
  });

  it('links a complete checkpoint into the store at once: the trainer deleting it cannot take it from a waiting commit', async () => {
    const dir = await newRepo();
    const repo = await Repository.open(dir);
    const ck = path.join(dir, 'run', 'checkpoint-7');
    await put(path.join(ck, 'model.bin'), Buffer.alloc(10_000, 3));
    await put(path.join(ck, 'trainer_state.json'), '{"global_step": 7}');
    const [c] = (await discoverCheckpoints(path.join(dir, 'run'))).candidates;
    const snap = (await linkSnapshot(c, repo.store.tmpDir))!;
    await fs.rm(ck, { recursive: true });
    expect(snap.files.map((f) => path.relative(snap.path, f)).sort()).toEqual(['model.bin', 'trainer_state.json']);
    expect((await fs.readFile(path.join(snap.path, 'model.bin'))).equals(Buffer.alloc(10_000, 3))).toBe(true);
    expect((await candidateOf(snap.path, true, c.convention))!.fingerprint).toBe(c.fingerprint);
    await snap.dispose();
    await expect(fs.access(snap.path)).rejects.toThrow();
  });

  it('reads step, epoch and metrics from the names training tools write', () => {
    expect(metaFromName('epoch=3-step=1200-val_loss=0.42.ckpt')).toEqual({ epoch: 3, step: 1200, metrics: { val_loss: 0.42 } });
    expect(metaFromName('checkpoint-500')).toEqual({ step: 500 });
    expect(metaFromName('global_step500')).toEqual({ step: 500 });
    expect(metaFromName('iter_0000500')).toEqual({ step: 500 });
    expect(metaFromName('step=500.ckpt')).toEqual({ step: 500 });
    expect(metaFromName('model_step_800.pt')).toEqual({ step: 800 });
    expect(metaFromName('epoch=0-step=10-loss=-1.5e-3.ckpt')).toEqual({ epoch: 0, step: 10, metrics: { loss: -0.0015 } });
    expect(metaFromName('last.ckpt')).toEqual({});
  });
});
