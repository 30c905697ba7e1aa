/**
 * The scale section of `npm run bench` (also `node dist/bench/scale.js` alone): what users wait
 * on, each as a ratio to its peer measured in the same run, interleaved, medians of ROUNDS.
 *
 * - restore: checkout of HEAD and HEAD~12 of a model with 24 commits where 4 of 16 tensors change
 *   per step, start-up taken off (checkout time less `ckpt --version` time), against `dd bs=16M`
 *   of the same file; before and after `ckpt gc` lays the chains out newest-first.
 * - start-up: `ckpt --version`, `log`, `status`, `show` against `node -e 0`.
 * - history: `log`, `status`, `du` and a commit at 1,000 commits against the same at 10.
 * - provenance: a commit inside a Git work tree of many committed files against
 *   `git status` + the same commit outside Git.
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

const ckpt = (cwd: string, ...args: string[]) => seconds(node, [ckptBin, ...args], cwd);
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

async function restore(work: string): Promise<void> {
  const mb = Number(process.env.CKPT_SCALE_MB ?? 64);
  const dir = path.join(work, 'restore');
  await fs.mkdir(dir, { recursive: true });
  const repo = await Repository.init(dir);
  const m = model(mb);
  const file = path.join(dir, 'model.safetensors');
  for (let s = 0; s < 24; s++) {
    if (s > 0) m.step(s);
    await fs.writeFile(file, m.bytes());
    await commitFiles(repo, [file], { message: `step ${s}`, meta: { step: s } });
  }
  const out = path.join(work, 'restore-out.bin');
  const measure = () =>
    interleaved({
      dd: () => seconds('dd', [`if=${file}`, `of=${out}`, 'bs=16M', 'status=none'], dir),
      version: () => ckpt(dir, '--version'),
      head: () => ckpt(dir, 'checkout', '-q', 'HEAD', '-o', out),
      old: () => ckpt(dir, 'checkout', '-q', 'HEAD~12', '-o', out),
    });
  const ratio = (t: Record<string, number>, k: string) => x(t.dd / Math.max(1e-3, t[k] - t.version));
  const before = await measure();
  ckpt(dir, 'gc', '-q');
  const after = await measure();
  say(`restore, ${mb} MiB model, 24 commits, 4 of 16 tensors changing per step (load ${load()}):`);
  say(`  dd bs=16M ${before.dd.toFixed(2)} s; ckpt --version ${before.version.toFixed(2)} s`);
  say(`  checkout HEAD vs dd, start-up off        as committed ${ratio(before, 'head')}   after gc ${ratio(after, 'head')}  (target >= 0.7)`);
  say(`  checkout HEAD~12 vs dd, start-up off     as committed ${ratio(before, 'old')}   after gc ${ratio(after, 'old')}  (target >= 0.7)`);
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rm(out, { force: true });
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
  execFileSync(node, [ckptBin, 'init', '-q'], { cwd: inGit });
  execFileSync(node, [ckptBin, 'init', '-q'], { cwd: outside });
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
  try {
    // CKPT_SCALE_ONLY=restore,startup,history,provenance runs only those (start-up and history are one run)
    const only = process.env.CKPT_SCALE_ONLY?.split(',');
    if (!only || only.includes('restore')) await restore(work);
    if (!only || only.includes('startup') || only.includes('history')) await startupAndHistory(work);
    if (!only || only.includes('provenance')) await provenance(work);
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
