/**
 * Real model sizes, with the default settings (compression on): one safetensors shard of
 * CKPT_SCALE_SHARD_GB GiB (default 20) committed and checked out against `dd bs=16M` of the same
 * file, with the peak RSS of each; then a folder of four shards of a quarter that size committed
 * at once, against the same four files committed one after another (four commits). Rounds are
 * interleaved (CKPT_SCALE_SHARD_ROUNDS, default 3: a round of 20 GiB takes minutes). It needs
 * about three times the shard size free on the scratch disk and says so rather than fill it.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs, statfsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeCheckpoint } from './syntheticCheckpoint.js';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wall seconds and peak RSS (MiB, from /usr/bin/time) of one run. */
function run(cmd: string, args: string[], cwd: string): { s: number; rssMiB: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return { s, rssMiB: Number(r.stderr.trim().split('\n').pop()) / 1024 };
}

export async function shardsSection(work: string, ckptBin: string, say: (s: string) => void): Promise<void> {
  const gib = Number(process.env.CKPT_SCALE_SHARD_GB ?? 20);
  const rounds = Number(process.env.CKPT_SCALE_SHARD_ROUNDS ?? 3);
  const st = statfsSync(work);
  const free = (st.bavail * st.bsize) / 2 ** 30;
  if (free < 3 * gib + 2) {
    say(`shards: skipped, ${free.toFixed(0)} GiB free where a ${gib} GiB shard needs about ${3 * gib + 2}`);
    return;
  }
  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
  const ckpt = (cwd: string, ...args: string[]) => run(ckptBin, args, cwd);
  const fresh = async (dir: string) => {
    await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true });
    ckpt(dir, 'init', '-q');
  };

  // one big shard
  const shard = path.join(work, 'model-00001-of-00001.safetensors');
  writeCheckpoint(shard, gib * 1024, 777);
  const store = path.join(work, 'shard-store');
  const copy = path.join(work, 'dd-copy.bin');
  const out = path.join(work, 'checkout.safetensors');
  const t: Record<string, number[]> = {};
  const rss: Record<string, number[]> = {};
  const add = (k: string, r: { s: number; rssMiB: number }) => {
    (t[k] ??= []).push(r.s);
    (rss[k] ??= []).push(r.rssMiB);
  };
  for (let r = 0; r < rounds; r++) {
    add('dd', run('dd', [`if=${shard}`, `of=${copy}`, 'bs=16M', 'status=none'], work));
    await fs.rm(copy, { force: true });
    await fresh(store);
    add('commit', ckpt(store, 'commit', '-q', '-m', 'shard', shard));
    add('checkout', ckpt(store, 'checkout', '-q', 'HEAD', '-o', out));
    await fs.rm(out, { force: true });
  }
  await fs.rm(store, { recursive: true, force: true });
  await fs.rm(shard, { force: true });
  const m = (k: string) => median(t[k]);
  const peak = (k: string) => Math.max(...rss[k]).toFixed(0);
  say(`shards, one ${gib} GiB safetensors shard, compression on, ${rounds} interleaved rounds (load ${load()}):`);
  say(`  dd bs=16M ${m('dd').toFixed(1)} s; commit ${m('commit').toFixed(1)} s, checkout ${m('checkout').toFixed(1)} s`);
  say(`  commit vs dd ${(m('dd') / m('commit')).toFixed(2)}x (target >= 0.7), peak RSS ${peak('commit')} MiB; checkout vs dd ${(m('dd') / m('checkout')).toFixed(2)}x (target >= 0.7), peak RSS ${peak('checkout')} MiB (target < 500)`);
  say(`  all: dd ${t.dd.map((x) => x.toFixed(1)).join(' ')}; commit ${t.commit.map((x) => x.toFixed(1)).join(' ')}; checkout ${t.checkout.map((x) => x.toFixed(1)).join(' ')}`);

  // a folder of four shards of a quarter the size
  const folder = path.join(work, 'model');
  await fs.mkdir(folder, { recursive: true });
  const names = [1, 2, 3, 4].map((k) => `model-0000${k}-of-00004.safetensors`);
  for (const [k, name] of names.entries()) writeCheckpoint(path.join(folder, name), (gib * 1024) / 4, 1000 + k);
  const f: Record<string, number[]> = { folder: [], apart: [] };
  for (let r = 0; r < rounds; r++) {
    await fresh(store);
    f.folder.push(ckpt(store, 'commit', '-q', '-m', 'folder', folder).s);
    await fresh(store);
    let s = 0;
    for (const name of names) s += ckpt(store, 'commit', '-q', '-m', name, path.join(folder, name)).s;
    f.apart.push(s);
  }
  await fs.rm(store, { recursive: true, force: true });
  await fs.rm(folder, { recursive: true, force: true });
  say(`  folder of four ${gib / 4} GiB shards: one commit ${median(f.folder).toFixed(1)} s, the four one after another ${median(f.apart).toFixed(1)} s: ${(median(f.apart) / median(f.folder)).toFixed(2)}x (target > 1)`);
}
