/**
 * The scale section of `npm run bench` (also `node dist/bench/scale.js` alone): what users wait
 * on, each as a ratio to its peer measured in the same run, interleaved, medians of ROUNDS.
 *
 * - restore: checkout, start-up taken off (checkout time less `ckpt --version` time), against
 *   `dd bs=16M` of the same file, as committed and after `ckpt gc` lays the chains out
 *   newest-first: HEAD and HEAD~12 of a model with 24 commits where 4 of 16 tensors change per
 *   step; HEAD and HEAD~100 of a 64 MiB model after 200 commits; the newest and oldest
 *   checkpoint of the real pretraining run of bench/storage.ts (CKPT_SCALE_RUN=folder of its .pt
 *   files, else made by train_run.py). CKPT_SCALE_RESTORE=24,200,real picks among them.
 * - start-up: `ckpt --version`, `log`, `status`, `show` against `node -e 0`.
 * - history: `log`, `status`, `du` and a commit at 1,000 commits against the same at 10.
 * - provenance: a commit inside a Git work tree of many committed files against
 *   `git status` + the same commit outside Git.
 * - shards: a 20 GiB shard committed and checked out against dd, with peak RSS, and a folder of
 *   four shards committed at once against one after another (bench/shards.ts).
 *
 * CKPT_SCALE_ONLY (e.g. startup,history) runs only the named sections.
 * CKPT_SCALE_MB (default 64) sets the restore model's size (the issue's figure is 256),
 * CKPT_SCALE_COMMITS (default 1000) the long history, CKPT_SCALE_GIT_FILES (default 5000) the Git
 * work tree, CKPT_BENCH_ROUNDS (default 5) the rounds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors } from '../src/formats/safetensors.js';
import { shardsSection } from './shards.js';
import { commitFiles } from '../src/repo/commit.js';
import { Repository } from '../src/repo/repository.js';

const ckptBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');
const ROUNDS = Number(process.env.CKPT_BENCH_ROUNDS ?? 5);
const node = process.execPath;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function seconds(cmd: string, args: string[], cwd: string): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** Runs each named step once per round, in turn, and returns the medians. */
async function interleaved(steps: Record<string, () => number | Promise<number>>): Promise<Record<string, number>> {
  const all: Record<string, number[]> = {};
  for (let r = 0; r < ROUNDS; r++) for (const [k, f] of Object.entries(steps)) (all[k] ??= []).push(await f());
  return Object.fromEntries(Object.entries(all).map(([k, v]) => [k, median(v)]));
}

const ckpt = (cwd: string, ...args: string[]) => seconds(ckptBin, args, cwd);
const say = (s: string) => process.stdout.write(`${s}\n`);
const x = (n: number) => `${n.toFixed(2)}x`;
const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');

/** 16 tensors of trained-like weights; each step nudges 4 of them (a different 4 each time). */
function model(mb: number) {
  const per = (mb * 1024 * 1024) / 16 / 4;
  const tensors = Array.from({ length: 16 }, (_, t) => {
    const w = new Float32Array(per);
    for (let i = 0; i < per; i++) w[i] = Math.sin(i * 0.013 + t) * 0.05 + ((i * 2654435761) % 1000) * 1e-6;
    return w;
  });
  return {
    step(s: number) {
      for (let k = 0; k < 4; k++) {
        const w = tensors[(s * 4 + k) % 16];
        for (let i = 0; i < w.length; i++) w[i] += 1e-4 * Math.sin(i + s);
      }
    },
    bytes: () => writeSafetensors(tensors.map((w, t) => ({ name: `layers.${t}.weight`, dtype: 'F32', shape: [w.length / 256, 256], data: new Uint8Array(w.buffer) }))),
  };
}

/**
 * Checkout of two commits of the store in `dir` against dd of `file`, start-up taken off, as
 * committed and after `ckpt gc`, interleaved.
 */
async function restoreCase(title: string, dir: string, file: string, revs: [string, string][]): Promise<void> {
  const out = path.join(path.dirname(dir), 'restore-out.bin');
  const measure = () =>
    interleaved({
      dd: () => seconds('dd', [`if=${file}`, `of=${out}`, 'bs=16M', 'status=none'], dir),
      version: () => ckpt(dir, '--version'),
      ...Object.fromEntries(revs.map(([label, rev]) => [label, () => ckpt(dir, 'checkout', '-q', rev, '-o', out)])),
    });
  const ratio = (t: Record<string, number>, k: string) => x(t.dd / Math.max(1e-3, t[k] - t.version));
  const before = await measure();
  ckpt(dir, 'gc', '-q');
  const after = await measure();
  say(`restore, ${title} (load ${load()}):`);
  say(`  dd bs=16M ${before.dd.toFixed(2)} s; ckpt --version ${before.version.toFixed(2)} s`);
  for (const [label] of revs) {
    say(`  checkout ${label.padEnd(9)} vs dd, start-up off   as committed ${ratio(before, label)}   after gc ${ratio(after, label)}  (target >= 0.7)`);
  }
  await fs.rm(out, { force: true });
}

/** The synthetic model committed `commits` times. */
async function syntheticRestore(work: string, mb: number, commits: number, old: number): Promise<void> {
  const dir = path.join(work, `restore${mb}x${commits}`);
  await fs.mkdir(dir, { recursive: true });
  const repo = await Repository.init(dir);
  const m = model(mb);
  const file = path.join(dir, 'model.safetensors');
  for (let s = 0; s < commits; s++) {
    if (s > 0) m.step(s);
    await fs.writeFile(file, m.bytes());
    await commitFiles(repo, [file], { message: `step ${s}`, meta: { step: s } });
  }
  await restoreCase(`${mb} MiB model, ${commits} commits, 4 of 16 tensors changing per step`, dir, file, [
    ['HEAD', 'HEAD'],
    [`HEAD~${old}`, `HEAD~${old}`],
  ]);
  await fs.rm(dir, { recursive: true, force: true });
}

/**
 * The real pretraining run of bench/storage.ts (fp32 + AdamW, 10 checkpoints): its .pt files from
 * CKPT_SCALE_RUN, or made here by fixtures/torch_runs/train_run.py with /usr/bin/python3.
 */
async function pretrainRestore(work: string): Promise<void> {
  let runDir = process.env.CKPT_SCALE_RUN;
  if (!runDir) {
    runDir = path.join(work, 'pretrain-run');
    const train = path.resolve(path.dirname(ckptBin), '..', 'fixtures', 'torch_runs', 'train_run.py');
    const args = [train, '--out', runDir, '--mode', 'pretrain', '--dtype', 'float32', '--steps', '100', '--every', '10', '--seed', '0'];
    const r = spawnSync('/usr/bin/python3', args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
    if (r.status !== 0) {
      say(`restore, real pretraining run: skipped (train_run.py failed: ${r.stderr.trim().split('\n').pop()})`);
      return;
    }
  }
  const files = (await fs.readdir(runDir)).filter((f) => f.endsWith('.pt')).sort().map((f) => path.join(runDir, f));
  const dir = path.join(work, 'restore-pretrain');
  await fs.mkdir(dir, { recursive: true });
  const repo = await Repository.init(dir);
  for (const [i, f] of files.entries()) await commitFiles(repo, [f], { message: `checkpoint ${i}`, meta: { step: i } });
  await restoreCase(`real pretraining run (fp32 + AdamW), ${files.length} checkpoints of ${((await fs.stat(files[0])).size / 2 ** 20).toFixed(1)} MiB`, dir, files[files.length - 1], [
    ['newest', 'HEAD'],
    ['oldest', `HEAD~${files.length - 1}`],
  ]);
  await fs.rm(dir, { recursive: true, force: true });
}

/** CKPT_SCALE_RESTORE picks the cases (default `24,200,real`). */
async function restore(work: string): Promise<void> {
  const cases = (process.env.CKPT_SCALE_RESTORE ?? '24,200,real').split(',');
  if (cases.includes('24')) await syntheticRestore(work, Number(process.env.CKPT_SCALE_MB ?? 64), 24, 12);
  if (cases.includes('200')) await syntheticRestore(work, 64, 200, 100);
  if (cases.includes('real')) await pretrainRestore(work);
}

/** A store with `n` commits of a small checkpoint whose one tensor changes each step. */
async function history(dir: string, n: number): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  const repo = await Repository.init(dir);
  const file = path.join(dir, 'model.safetensors');
  const w = new Float32Array(4096);
  for (let s = 0; s < n; s++) {
    w[s % w.length] += 1;
    await fs.writeFile(file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64, 64], data: new Uint8Array(w.buffer) }]));
    await commitFiles(repo, [file], { message: `step ${s}`, meta: { step: s, metrics: { loss: 1 / (s + 1) } } });
  }
}

async function startupAndHistory(work: string): Promise<void> {
  const long = Number(process.env.CKPT_SCALE_COMMITS ?? 1000);
  const small = path.join(work, 'hist10');
  const big = path.join(work, `hist${long}`);
  await history(small, 10);
  await history(big, long);
  let step = 0;
  const commitIn = (dir: string) => () => {
    // a new version each time, so the commit stores something
    const w = new Float32Array(4096).fill(++step);
    return fs
      .writeFile(path.join(dir, 'model.safetensors'), writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64, 64], data: new Uint8Array(w.buffer) }]))
      .then(() => ckpt(dir, 'commit', '-q', '-m', 'again', 'model.safetensors'));
  };
  const t = await interleaved({
    node: () => seconds(node, ['-e', '0'], work),
    version: () => ckpt(small, '--version'),
    'log 10': () => ckpt(small, 'log'),
    'log N': () => ckpt(big, 'log'),
    'status 10': () => ckpt(small, 'status'),
    'status N': () => ckpt(big, 'status'),
    'show 10': () => ckpt(small, 'show', 'HEAD'),
    'show N': () => ckpt(big, 'show', 'HEAD'),
    'du 10': () => ckpt(small, 'du'),
    'du N': () => ckpt(big, 'du'),
    'commit 10': commitIn(small),
    'commit N': commitIn(big),
  });
  say(`start-up, against node -e 0 = ${t.node.toFixed(3)} s (load ${load()}):`);
  say(`  ckpt --version ${x(t.version / t.node)}   log ${x(t['log 10'] / t.node)}   status ${x(t['status 10'] / t.node)}   show ${x(t['show 10'] / t.node)}  (target <= 2)`);
  say(`history, ${long} commits against 10:`);
  say(`  log at ${long}: ${x(t['log N'] / t.node)} node -e 0 (target <= 2); status at ${long}: ${x(t['status N'] / t.node)}; show at ${long}: ${x(t['show N'] / t.node)} (target <= 2)`);
  for (const k of ['commit', 'log', 'status', 'du']) say(`  ${k.padEnd(7)} ${long} vs 10 commits: ${x(t[`${k} N`] / t[`${k} 10`])}  (target <= 1.25)`);
  await fs.rm(small, { recursive: true, force: true });
  await fs.rm(big, { recursive: true, force: true });
}

async function provenance(work: string): Promise<void> {
  const files = Number(process.env.CKPT_SCALE_GIT_FILES ?? 5000);
  const inGit = path.join(work, 'gitwt');
  const outside = path.join(work, 'nogit');
  await fs.mkdir(inGit, { recursive: true });
  await fs.mkdir(outside, { recursive: true });
  for (let i = 0; i < files; i++) {
    const d = path.join(inGit, 'src', `m${i % 100}`);
    if (i < 100) await fs.mkdir(d, { recursive: true });
    await fs.writeFile(path.join(d, `f${i}.py`), `# file ${i}\n`.repeat(20));
  }
  const sh = (cmd: string, cwd: string) => execFileSync('sh', ['-c', cmd], { cwd, stdio: 'ignore' });
  sh('git init -q && git add -A && git -c user.name=b -c user.email=b@b commit -qm code', inGit);
  execFileSync(ckptBin, ['init', '-q'], { cwd: inGit });
  execFileSync(ckptBin, ['init', '-q'], { cwd: outside });
  let step = 0;
  const commitIn = (dir: string) => async () => {
    const w = new Float32Array(36 * 1024).fill(++step);
    await fs.writeFile(path.join(dir, 'ckpt.safetensors'), writeSafetensors([{ name: 'w', dtype: 'F32', shape: [36, 1024], data: new Uint8Array(w.buffer) }]));
    return ckpt(dir, 'commit', '-q', '-m', 'step', 'ckpt.safetensors');
  };
  const t = await interleaved({
    'git status': () => seconds('git', ['status', '--porcelain=v2', '-z', '--branch'], inGit),
    outside: commitIn(outside),
    inside: commitIn(inGit),
  });
  say(`provenance, Git work tree of ${files} committed files (load ${load()}):`);
  say(`  git status ${t['git status'].toFixed(3)} s; commit outside Git ${t.outside.toFixed(3)} s; inside ${t.inside.toFixed(3)} s`);
  say(`  commit inside / (git status + commit outside) ${x(t.inside / (t['git status'] + t.outside))}  (target <= 1.2)`);
  await fs.rm(inGit, { recursive: true, force: true });
  await fs.rm(outside, { recursive: true, force: true });
}

export async function scaleSection(): Promise<void> {
  const work = await fs.mkdtemp(path.join(process.env.CKPT_BENCH_DIR ?? os.tmpdir(), 'ckpt-scale-'));
  say(`\nscale (${ROUNDS} interleaved rounds, medians; ratios to a peer in the same run):`);
  // CKPT_SCALE_ONLY=restore (or a comma list of restore, startup, history, provenance, shards) runs only those parts
  const only = process.env.CKPT_SCALE_ONLY?.split(',');
  const want = (part: string) => !only || only.includes(part);
  try {
    if (want('restore')) await restore(work);
    // start-up and history are one run
    if (want('startup') || want('history')) await startupAndHistory(work);
    if (want('provenance')) await provenance(work);
    if (want('shards')) await shardsSection(work, ckptBin, say);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  scaleSection().catch((e) => {
    process.stderr.write(`scale bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
