/**
 * `npm run bench`: ckpt against its peers in the same run, interleaved (A B A B ...), medians.
 * Figures are ratios of speeds (peer time / ckpt time: above 1 means ckpt is faster), plus
 * ckpt's peak RSS. Writing is noisy on these machines, so every measurement is repeated.
 *
 * CKPT_BENCH_MB (default 1024) sets the file size, CKPT_BENCH_ROUNDS (default 5) the rounds,
 * CKPT_BENCH_SCALE=0 skips the scale section (bench/scale.ts).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs, openSync, writeSync, closeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeCheckpoint } from './syntheticCheckpoint.js';
import { encodeSafetensorsHeader } from '../src/formats/safetensors.js';
import { scaleSection } from './scale.js';

const ckptBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');
const MB = Number(process.env.CKPT_BENCH_MB ?? 1024);
const ROUNDS = Number(process.env.CKPT_BENCH_ROUNDS ?? 5);

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

/** Seconds and peak RSS (KiB) of a command, via GNU time when present. */
function timed(cmd: string, args: string[], cwd: string): { s: number; rssKiB?: number } {
  const useTime = has('/usr/bin/time');
  const t0 = process.hrtime.bigint();
  const r = useTime
    ? spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { cwd, encoding: 'utf8' })
    : spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  const rss = useTime ? Number(r.stderr.trim().split('\n').pop()) : undefined;
  return { s, rssKiB: rss };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Incompressible tensors (random bytes in a safetensors frame): compression must notice early and
 * cost little, so commit with compression on should run within 10% of compression off.
 */
async function randomData(work: string, like: string): Promise<void> {
  const size = (await fs.stat(like)).size;
  const file = path.join(work, 'random.safetensors');
  const header = encodeSafetensorsHeader([{ name: 'random', dtype: 'U8', shape: [size - 4096], length: size - 4096 }]);
  const fd = openSync(file, 'w');
  writeSync(fd, header);
  const block = Buffer.alloc(16 * 1024 * 1024);
  for (let left = size - 4096; left > 0; left -= block.length) {
    for (let i = 0; i < block.length; i += 65536) (await import('node:crypto')).randomFillSync(block, i, 65536);
    writeSync(fd, block, 0, Math.min(left, block.length));
  }
  closeSync(fd);
  const times: Record<string, number[]> = { on: [], off: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ['off', 'on'] as const) {
      const repo = path.join(work, `random-${mode}`);
      await fs.rm(repo, { recursive: true, force: true });
      await fs.mkdir(repo);
      execFileSync(ckptBin, ['init', '-q'], { cwd: repo });
      times[mode].push(timed(ckptBin, ['commit', file, '-m', 'random', '-q', ...(mode === 'off' ? ['--no-compress'] : [])], repo).s);
      await fs.rm(repo, { recursive: true, force: true });
    }
  }
  const on = median(times.on);
  const off = median(times.off);
  process.stdout.write(
    `\nrandom (incompressible) data, ${ROUNDS} interleaved rounds:\n` +
      `  commit compression on ${on.toFixed(3)} s, off ${off.toFixed(3)} s: on/off ${(on / off).toFixed(3)}  (target <= 1.10)\n` +
      `  all on: ${times.on.map((x) => x.toFixed(2)).join(' ')}; all off: ${times.off.map((x) => x.toFixed(2)).join(' ')}\n`,
  );
  await fs.rm(file, { force: true });
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(process.env.CKPT_BENCH_DIR ?? os.tmpdir(), 'ckpt-bench-'));
  const file = path.join(work, 'model.safetensors');
  process.stdout.write(`ckpt bench: ${MB} MiB safetensors (F32 + BF16), ${ROUNDS} interleaved rounds, in ${work}\n`);
  writeCheckpoint(file, MB, 12345);
  const gitLfs = has('git-lfs') && has('git');
  const b3sum = has('b3sum');
  const rows: Record<string, number[]> = {};
  const rss: number[] = [];
  const add = (k: string, v: number) => (rows[k] ??= []).push(v);
  for (let round = 0; round < ROUNDS; round++) {
    const copy = path.join(work, 'copy.bin');
    add('dd bs=16M', timed('dd', [`if=${file}`, `of=${copy}`, 'bs=16M', 'status=none'], work).s);
    await fs.rm(copy, { force: true });
    add('cp', timed('cp', [file, copy], work).s);
    await fs.rm(copy, { force: true });

    for (const [label, extra] of [
      ['ckpt commit --no-compress', ['--no-compress']],
      ['ckpt commit (compressed)', []],
    ] as const) {
      const repo = path.join(work, 'repo');
      await fs.rm(repo, { recursive: true, force: true });
      await fs.mkdir(repo);
      execFileSync(ckptBin, ['init', '-q'], { cwd: repo });
      const c = timed(ckptBin, ['commit', file, '-m', 'bench', '-q', ...extra], repo);
      add(label, c.s);
      if (c.rssKiB) rss.push(c.rssKiB);
      if (extra.length === 0) {
        add('ckpt re-commit unchanged', timed(ckptBin, ['commit', file, '-m', 'again', '-q'], repo).s);
        const out = path.join(work, 'out.safetensors');
        const co = timed(ckptBin, ['checkout', 'HEAD', '-o', out, '-q'], repo);
        add('ckpt checkout (compressed)', co.s);
        if (co.rssKiB) rss.push(co.rssKiB);
        await fs.rm(out, { force: true });
      } else {
        const out = path.join(work, 'out.safetensors');
        add('ckpt checkout --no-compress store', timed(ckptBin, ['checkout', 'HEAD', '-o', out, '-q'], repo).s);
        await fs.rm(out, { force: true });
      }
      await fs.rm(repo, { recursive: true, force: true });
    }
    if (b3sum) add('b3sum', timed('b3sum', [file], work).s);
    if (gitLfs) {
      const g = path.join(work, 'lfs');
      await fs.rm(g, { recursive: true, force: true });
      await fs.mkdir(g);
      const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { cwd: g, stdio: 'ignore' });
      sh('git init -q && git config user.email b@b && git config user.name b && git lfs install --local >/dev/null && git lfs track "*.safetensors" >/dev/null && git add .gitattributes && git commit -qm attrs');
      await fs.copyFile(file, path.join(g, 'model.safetensors'));
      add('git lfs add+commit', timed('sh', ['-c', 'git add model.safetensors && git commit -qm model'], g).s);
      await fs.rm(g, { recursive: true, force: true });
    }
    process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));
  const gb = MB / 1024;
  process.stdout.write(`\nmedian seconds (throughput) over ${ROUNDS} rounds:\n`);
  for (const [k, v] of Object.entries(m)) process.stdout.write(`  ${k.padEnd(36)} ${v.toFixed(3)} s  (${(gb / v).toFixed(2)} GiB/s)  all: ${rows[k].map((x) => x.toFixed(2)).join(' ')}\n`);
  const ratio = (peer: string, ours: string) => (m[peer] && m[ours] ? (m[peer] / m[ours]).toFixed(2) : 'n/a');
  process.stdout.write(`\nspeed ratios (peer time / ckpt time; 1.00 = as fast as the peer):\n`);
  process.stdout.write(`  commit --no-compress vs dd bs=16M      ${ratio('dd bs=16M', 'ckpt commit --no-compress')}x  (target >= 0.7)\n`);
  process.stdout.write(`  commit compressed vs dd bs=16M         ${ratio('dd bs=16M', 'ckpt commit (compressed)')}x  (target >= 0.7)\n`);
  process.stdout.write(`  commit --no-compress vs cp             ${ratio('cp', 'ckpt commit --no-compress')}x\n`);
  if (gitLfs) {
    process.stdout.write(`  commit --no-compress vs git lfs        ${ratio('git lfs add+commit', 'ckpt commit --no-compress')}x  (target >= 5)\n`);
    process.stdout.write(`  commit compressed vs git lfs           ${ratio('git lfs add+commit', 'ckpt commit (compressed)')}x\n`);
  }
  if (b3sum) process.stdout.write(`  re-commit unchanged: time / b3sum time ${(m['ckpt re-commit unchanged'] / m.b3sum).toFixed(2)}x  (target <= 2)\n`);
  process.stdout.write(`  checkout (compressed store) vs dd      ${ratio('dd bs=16M', 'ckpt checkout (compressed)')}x  (target >= 0.8)\n`);
  process.stdout.write(`  checkout (plain store) vs dd           ${ratio('dd bs=16M', 'ckpt checkout --no-compress store')}x\n`);
  if (rss.length) process.stdout.write(`  peak RSS of ckpt commit/checkout       ${(Math.max(...rss) / 1024).toFixed(0)} MiB  (target < 300)\n`);
  await randomData(work, file);
  await fs.rm(work, { recursive: true, force: true });
  if (process.env.CKPT_BENCH_SCALE !== '0') await scaleSection();
}

// run as a program, not when a script imports writeCheckpoint
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e) => {
    process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
