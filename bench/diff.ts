/**
 * `node dist/bench/diff.js`: what `ckpt diff` costs on two 1 GiB checkpoints with 10% of their
 * tensors changed, against `cmp` of the same two files in the same run (interleaved rounds,
 * medians). Also the speed of chunkSumSquares, which commit runs on every tensor chunk, and its
 * share of a commit's time.
 *
 * CKPT_BENCH_MB (default 1024) sets the file size, CKPT_BENCH_ROUNDS (default 5) the rounds,
 * CKPT_BENCH_COMPRESS=1 commits with compression (default: stored plain).
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, promises as fs, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chunkSumSquares } from '../src/diff/tensorDeltaStats.js';
import { encodeSafetensorsHeader } from '../src/formats/safetensors.js';
import { diff } from '../src/repo/diff.js';
import { Repository } from '../src/repo/repository.js';

const ckptBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');
const MB = Number(process.env.CKPT_BENCH_MB ?? 1024);
const ROUNDS = Number(process.env.CKPT_BENCH_ROUNDS ?? 5);
const COMPRESS = process.env.CKPT_BENCH_COMPRESS === '1';
const TENSOR_BYTES = 16 * 1024 * 1024;
/** Every tenth tensor changes, starting with the tenth: cmp meets its first difference 9 tensors in. */
const changes = (i: number) => i % 10 === 9;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function run(cmd: string, args: string[], cwd: string, okCodes = [0]): { s: number; stdout: string } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (!okCodes.includes(r.status ?? -1)) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { s, stdout: r.stdout };
}

interface Written {
  changedBytes: number;
  tensors: number;
  changedTensors: number;
}

/**
 * A and B: trained-like weights (random signs and mantissas, exponents in the band real weights
 * use), F32 with every fourth tensor BF16. B's changed tensors have the low mantissa bits of every
 * element flipped at random, a small change to every element, as a training step makes.
 */
function writePair(fileA: string, fileB: string, mb: number): Written {
  const bytes = mb * 1024 * 1024;
  const tensors: { name: string; dtype: string; shape: number[]; length: number }[] = [];
  for (let i = 0, off = 0; off < bytes; i++, off += TENSOR_BYTES) {
    const bf16 = i % 4 === 3;
    const len = Math.min(TENSOR_BYTES, bytes - off);
    tensors.push({ name: `layers.${i}.weight`, dtype: bf16 ? 'BF16' : 'F32', shape: [len / (bf16 ? 2 : 4) / 1024, 1024], length: len });
  }
  const header = encodeSafetensorsHeader(tensors);
  const fa = openSync(fileA, 'w');
  const fb = openSync(fileB, 'w');
  writeSync(fa, header);
  writeSync(fb, header);
  let s = 12345;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const words = new Uint32Array(TENSOR_BYTES / 4);
  let changedBytes = 0;
  let changedTensors = 0;
  tensors.forEach((t, i) => {
    const n = t.length / 4;
    for (let j = 0; j < n; j++) {
      const r = next();
      const exp = 114 + ((r >>> 8) % 11);
      const w = ((r & 0x80000000) | (exp << 23) | ((r * 2654435761) >>> 9)) >>> 0;
      // A BF16 word holds two values: keep both exponents realistic.
      words[j] = t.dtype === 'BF16' ? ((w & 0xffff0000) | (w >>> 16)) >>> 0 : w;
    }
    const view = new Uint8Array(words.buffer, 0, t.length);
    writeSync(fa, view);
    if (changes(i)) {
      for (let j = 0; j < n; j++) words[j] ^= next() & 0x000f000f;
      changedBytes += t.length;
      changedTensors++;
    }
    writeSync(fb, view);
  });
  closeSync(fa);
  closeSync(fb);
  return { changedBytes, tensors: tensors.length, changedTensors };
}

/** GB/s of chunkSumSquares over 1 MiB chunks, by wall clock and by CPU time (this machine is shared). */
function sumSquaresSpeed(dtype: string, misaligned: boolean): { wall: number; cpu: number } {
  const chunk = 1024 * 1024;
  const count = 64;
  const buf = new Uint8Array(chunk * count + 4);
  let s = 99;
  for (let i = 0; i + 4 <= buf.length; i += 4) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const exp = 114 + ((s >>> 8) % 11);
    const w = ((s & 0x80000000) | (exp << 23) | ((s >>> 9) & 0x7fffff)) >>> 0;
    buf[i] = w & 0xff;
    buf[i + 1] = (w >>> 8) & 0xff;
    buf[i + 2] = (w >>> 16) & 0xff;
    buf[i + 3] = w >>> 24;
  }
  const at = misaligned ? 2 : 0;
  let best = { wall: 0, cpu: 0 };
  let sink = 0;
  for (let rep = 0; rep < 6; rep++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    for (let k = 0; k < count; k++) sink += chunkSumSquares(buf.subarray(at + k * chunk, at + (k + 1) * chunk), dtype);
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    const gb = (chunk * count) / 1e9;
    if (rep > 0 && gb / wall > best.wall) best = { wall: gb / wall, cpu: gb / ((c.user + c.system) / 1e6) };
  }
  if (Number.isNaN(sink)) process.stdout.write('');
  return best;
}

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(process.env.CKPT_BENCH_DIR ?? os.tmpdir(), 'ckpt-bench-diff-'));
  const node = process.execPath;
  try {
    process.stdout.write(`ckpt diff bench: two ${MB} MiB safetensors (F32 + BF16), ${ROUNDS} interleaved rounds, store ${COMPRESS ? 'compressed' : 'plain'}, in ${work}\n`);
    const repo = path.join(work, 'repo');
    await fs.mkdir(repo);
    const fileA = path.join(work, 'a.safetensors');
    const fileB = path.join(work, 'b.safetensors');
    const copyA = path.join(work, 'a-copy.safetensors');
    const w = writePair(fileA, fileB, MB);
    await fs.copyFile(fileA, copyA);
    const gb = (MB * 1024 * 1024) / 1e9;
    const changedGB = w.changedBytes / 1e9;
    process.stdout.write(`${w.changedTensors} of ${w.tensors} tensors changed: ${(changedGB * 1000).toFixed(0)} MB per side\n`);

    run(node, [ckptBin, 'init', '-q'], repo);
    const commitArgs = (f: string, m: string) => ['commit', f, '-m', m, '-q', ...(COMPRESS ? [] : ['--no-compress'])];
    const commitA = run(node, [ckptBin, ...commitArgs(fileA, 'A')], repo).s;
    run(node, [ckptBin, ...commitArgs(fileB, 'B')], repo);

    // The statistics must be right before their speed means anything.
    const check = JSON.parse(run(node, [ckptBin, 'diff', 'HEAD~1', 'HEAD', '--json'], repo).stdout);
    if (check.tensors.changed.length !== w.changedTensors || check.tensors.unchanged.length !== w.tensors - w.changedTensors) {
      throw new Error(`diff found ${check.tensors.changed.length} changed tensors, expected ${w.changedTensors}`);
    }
    const readBytes: number = check.read.bytes;

    const rows: Record<string, number[]> = {};
    const add = (k: string, v: number) => (rows[k] ??= []).push(v);
    for (let round = 0; round < ROUNDS; round++) {
      add('dd bs=16M (copy A)', run('dd', [`if=${fileA}`, `of=${path.join(work, 'dd.out')}`, 'bs=16M', 'status=none'], work).s);
      await fs.rm(path.join(work, 'dd.out'), { force: true });
      add('cmp A B (stops at the first difference)', run('cmp', ['-s', fileA, fileB], work, [1]).s);
      add('cmp A A-copy (reads both whole)', run('cmp', ['-s', fileA, copyA], work).s);
      add('ckpt diff --no-stats (structure)', run(node, [ckptBin, 'diff', 'HEAD~1', 'HEAD', '--no-stats', '-q'], repo).s);
      add('ckpt diff (with stats)', run(node, [ckptBin, 'diff', 'HEAD~1', 'HEAD', '-q'], repo).s);
      add('ckpt diff HEAD~1 B-file (B not committed)', run(node, [ckptBin, 'diff', 'HEAD~1', fileB, '-q'], repo).s);
      add('ckpt --help (node start-up, the floor)', run(node, [ckptBin, '--help'], repo).s);
      // In process: the diff itself, without the start-up every command pays.
      for (const [label, stats] of [['diff() --no-stats, in process', false], ['diff() with stats, in process', true]] as const) {
        const r = await Repository.open(repo);
        const c0 = process.cpuUsage();
        const t0 = process.hrtime.bigint();
        await diff(r, 'HEAD~1', 'HEAD', { cwd: repo, stats });
        add(label, Number(process.hrtime.bigint() - t0) / 1e9);
        const c = process.cpuUsage(c0);
        // On a shared machine, CPU time says what the work costs when wall time says how busy the others are.
        add(`${label} (CPU time)`, (c.user + c.system) / 1e6);
      }
      process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
    }
    const m = Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, median(v)]));
    process.stdout.write(`\nmedian seconds over ${ROUNDS} rounds:\n`);
    for (const [k, v] of Object.entries(m)) process.stdout.write(`  ${k.padEnd(44)} ${v.toFixed(3)} s   all: ${rows[k].map((x) => x.toFixed(2)).join(' ')}\n`);

    const cmpFirst = run('cmp', [fileA, fileB], work, [1]).stdout.trim();
    const structural = m['ckpt diff --no-stats (structure)'];
    const withStats = m['ckpt diff (with stats)'];
    const inStructural = m['diff() --no-stats, in process'];
    const inStats = m['diff() with stats, in process'];
    const cmpWhole = m['cmp A A-copy (reads both whole)'];
    const cmpAB = m['cmp A B (stops at the first difference)'];
    const notCommitted = m['ckpt diff HEAD~1 B-file (B not committed)'];
    const ratio = (peer: number, ours: number) => `${(peer / ours).toFixed(2)}x`;
    process.stdout.write(`\n  cmp A B: ${cmpFirst}\n`);
    process.stdout.write(`  diff with stats read ${(readBytes / 1e6).toFixed(0)} MB (both sides' differing chunks, ${check.read.chunks} chunks)\n`);
    process.stdout.write(`\nfigures (ratios are peer time / ckpt time: above 1, ckpt is faster):\n`);
    process.stdout.write(`  structural diff, CLI (--no-stats)         ${structural.toFixed(3)} s   vs cmp A B ${ratio(cmpAB, structural)}, vs cmp whole ${ratio(cmpWhole, structural)}\n`);
    process.stdout.write(`  structural diff, in process               ${inStructural.toFixed(3)} s   vs cmp A B ${ratio(cmpAB, inStructural)}, vs cmp whole ${ratio(cmpWhole, inStructural)}\n`);
    process.stdout.write(`  diff with stats, CLI                      ${withStats.toFixed(3)} s   vs cmp A B ${ratio(cmpAB, withStats)}, vs cmp whole ${ratio(cmpWhole, withStats)}\n`);
    process.stdout.write(`  diff with stats, in process               ${inStats.toFixed(3)} s   vs cmp A B ${ratio(cmpAB, inStats)}, vs cmp whole ${ratio(cmpWhole, inStats)}\n`);
    const inStatsCpu = m['diff() with stats, in process (CPU time)'];
    process.stdout.write(`  stats throughput, changed data per side   ${(changedGB / inStats).toFixed(2)} GB/s in process (${((2 * changedGB) / inStats).toFixed(2)} GB/s both sides), ${(changedGB / inStatsCpu).toFixed(2)} GB/s by CPU time, ${(changedGB / withStats).toFixed(2)} GB/s by the CLI with start-up\n`);
    process.stdout.write(`  cmp whole-file throughput                 ${(gb / cmpWhole).toFixed(2)} GB/s per file (${((2 * gb) / cmpWhole).toFixed(2)} GB/s read)\n`);
    process.stdout.write(`  diff against B not committed (hashes B)   ${notCommitted.toFixed(3)} s = ${(gb / notCommitted).toFixed(2)} GB/s of B, vs cmp whole ${ratio(cmpWhole, notCommitted)}\n`);

    process.stdout.write(`\nchunkSumSquares over 1 MiB chunks (best of 5; wall / CPU time):\n`);
    const speeds: Record<string, number> = {};
    const cpuSpeeds: Record<string, number> = {};
    for (const dtype of ['F32', 'BF16', 'F16']) {
      for (const mis of [false, true]) {
        const sp = sumSquaresSpeed(dtype, mis);
        if (!mis) (speeds[dtype] = sp.wall), (cpuSpeeds[dtype] = sp.cpu);
        process.stdout.write(`  ${dtype.padEnd(5)} ${mis ? 'misaligned' : 'aligned   '}  ${sp.wall.toFixed(2)} GB/s wall, ${sp.cpu.toFixed(2)} GB/s CPU\n`);
      }
    }
    // The bench file is 3/4 F32 and 1/4 BF16 by bytes.
    const sumsqSeconds = (gb * 0.75) / speeds.F32 + (gb * 0.25) / speeds.BF16;
    const sumsqCpu = (gb * 0.75) / cpuSpeeds.F32 + (gb * 0.25) / cpuSpeeds.BF16;
    const dd = m['dd bs=16M (copy A)'];
    process.stdout.write(
      `  on this ${MB} MiB file: sums take ~${sumsqSeconds.toFixed(2)} s at wall speed (~${sumsqCpu.toFixed(2)} s of CPU); ` +
        `commit took ${commitA.toFixed(2)} s (one run, ${COMPRESS ? 'compressed' : '--no-compress'}), so the sums are ~${((100 * sumsqSeconds) / commitA).toFixed(0)}% ` +
        `(by CPU ~${((100 * sumsqCpu) / commitA).toFixed(0)}%) of it; dd bs=16M ${dd.toFixed(2)} s, commit vs dd ${(dd / commitA).toFixed(2)}x\n`,
    );
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
