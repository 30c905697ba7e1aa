/**
 * `node dist/bench/merge.js`: `ckpt merge --method linear` of two checkpoints against PyTorch
 * loading both and averaging them (and saving the result, as a merge tool does) in the same run,
 * interleaved (ckpt, torch, ckpt, torch, ...), medians; and ckpt's peak RSS (target < 300 MiB).
 * Every round uses other weights, so no round finds its result already stored.
 *
 * CKPT_BENCH_MB (default 1024) sets each checkpoint's size, CKPT_BENCH_ROUNDS (default 3) the rounds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, openSync, promises as fs, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensorsHeader } from '../src/formats/safetensors.js';

const ckptBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');
const MB = Number(process.env.CKPT_BENCH_MB ?? 1024);
const ROUNDS = Number(process.env.CKPT_BENCH_ROUNDS ?? 3);
const PYTHON = '/usr/bin/python3';

/** Seconds and peak RSS (KiB) of a command, measured by GNU time. */
function timed(cmd: string, args: string[], cwd: string): { s: number; rssKiB: number } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', cmd, ...args], { cwd, encoding: 'utf8', maxBuffer: 16 << 20 });
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return { s, rssKiB: Number(r.stderr.trim().split('\n').pop()) };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** An F32 safetensors of `mb` MiB in 16 MiB tensors of weight-like values (xorshift, narrow exponents). */
function writeModel(file: string, mb: number, seed: number): void {
  const tensorBytes = 16 << 20;
  const tensors = Array.from({ length: Math.ceil((mb << 20) / tensorBytes) }, (_, i) => {
    const length = Math.min(tensorBytes, (mb << 20) - i * tensorBytes);
    return { name: `layers.${i}.weight`, dtype: 'F32', shape: [length / 4096, 1024], length };
  });
  const fd = openSync(file, 'w');
  writeSync(fd, encodeSafetensorsHeader(tensors));
  const f = new Float32Array(tensorBytes / 4);
  let s = seed >>> 0 || 1;
  for (const t of tensors) {
    for (let i = 0; i < t.length / 4; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      f[i] = (((s >>> 0) / 2 ** 32) * 2 - 1) * 0.05;
    }
    writeSync(fd, new Uint8Array(f.buffer, 0, t.length));
  }
  closeSync(fd);
}

/** The peer: torch reads both files, averages tensor by tensor in float32, writes the result. */
const TORCH_MERGE = `
import json, struct, sys, torch
a_path, b_path, out_path, wa, wb = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
def load(p):
    raw = bytearray(open(p, 'rb').read())
    n = struct.unpack('<Q', raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    return {k: torch.frombuffer(raw, dtype=torch.float32, offset=8 + n + v['data_offsets'][0],
            count=(v['data_offsets'][1] - v['data_offsets'][0]) // 4).reshape(v['shape'])
            for k, v in h.items() if k != '__metadata__'}, raw[8:8 + n]
a, header = load(a_path)
b, _ = load(b_path)
with open(out_path, 'wb') as f:
    f.write(struct.pack('<Q', len(header)) + header)
    for k in a:
        f.write(((wa * a[k] + wb * b[k]) / (wa + wb)).numpy().tobytes())
`;

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(process.env.CKPT_BENCH_DIR ?? os.tmpdir(), 'ckpt-bench-merge-'));
  const node = process.execPath;
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
  process.stdout.write(`ckpt merge bench: two ${MB} MiB F32 safetensors, ${ROUNDS} interleaved rounds, in ${work}; load ${load()}\n`);
  const [fa, fb] = [path.join(work, 'a.safetensors'), path.join(work, 'b.safetensors')];
  writeModel(fa, MB, 1);
  writeModel(fb, MB, 2);
  const repo = path.join(work, 'repo');
  await fs.mkdir(repo);
  const run = (...args: string[]) => execFileSync(node, [ckptBin, ...args], { cwd: repo, stdio: ['ignore', 'ignore', 'inherit'] });
  run('init', '-q');
  await fs.copyFile(fa, path.join(repo, 'model.safetensors'));
  run('commit', 'model.safetensors', '-m', 'a', '-q');
  run('tag', 'a');
  await fs.copyFile(fb, path.join(repo, 'model.safetensors'));
  run('commit', 'model.safetensors', '-m', 'b', '-q', '--branch', 'b');
  await fs.rm(path.join(repo, 'model.safetensors'));
  const times: Record<'ckpt' | 'torch', number[]> = { ckpt: [], torch: [] };
  const rss: Record<'ckpt' | 'torch', number[]> = { ckpt: [], torch: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const w = [0.5 + r * 0.01, 0.5 - r * 0.01];
    const c = timed(node, [ckptBin, 'merge', '--method', 'linear', 'a', 'b', '--weights', w.join(','), '-q'], repo);
    times.ckpt.push(c.s);
    rss.ckpt.push(c.rssKiB);
    const out = path.join(work, 'torch.safetensors');
    const t = timed(PYTHON, ['-c', TORCH_MERGE, fa, fb, out, String(w[0]), String(w[1])], work);
    times.torch.push(t.s);
    rss.torch.push(t.rssKiB);
    await fs.rm(out, { force: true });
    process.stdout.write(`round ${r + 1}/${ROUNDS}: ckpt ${c.s.toFixed(2)} s (${(c.rssKiB / 1024).toFixed(0)} MiB), torch ${t.s.toFixed(2)} s (${(t.rssKiB / 1024).toFixed(0)} MiB); load ${load()}\n`);
  }
  const [mc, mt] = [median(times.ckpt), median(times.torch)];
  process.stdout.write(
    `\nmedian over ${ROUNDS} rounds: ckpt merge ${mc.toFixed(2)} s, torch load+average+save ${mt.toFixed(2)} s\n` +
      `  speed ratio (torch time / ckpt time; above 1 = ckpt faster)  ${(mt / mc).toFixed(2)}x\n` +
      `  peak RSS: ckpt ${(Math.max(...rss.ckpt) / 1024).toFixed(0)} MiB (target < 300), torch ${(Math.max(...rss.torch) / 1024).toFixed(0)} MiB\n` +
      `  load average at the end: ${load()}\n`,
  );
  await fs.rm(work, { recursive: true, force: true });
}

main().catch((e) => {
  process.stderr.write(`bench failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
