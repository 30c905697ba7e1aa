/**
 * `ckpt watch` beside a real PyTorch training loop (test/watch/train_loop.py, Debian's torch):
 * the loop's steps per second with the watcher running against without it, interleaved rounds
 * (A B A B ...), medians; and the delay from a checkpoint's completion (the loop's own clock when
 * its last file is written) to its commit landing (the commit's time), median and worst.
 *
 *   node dist/bench/watch.js     CKPT_BENCH_ROUNDS (default 3), CKPT_BENCH_STEPS (default 200),
 *                                CKPT_BENCH_WIDTH (default 768: a 768x768 linear layer, about
 *                                2.3 MiB of weights and 7 MiB per checkpoint with AdamW's state)
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const ckptBin = path.join(root, 'bin', 'ckpt');
const loop = path.join(root, 'test', 'watch', 'train_loop.py');
const ROUNDS = Number(process.env.CKPT_BENCH_ROUNDS ?? 3);
const STEPS = Number(process.env.CKPT_BENCH_STEPS ?? 200);
const WIDTH = Number(process.env.CKPT_BENCH_WIDTH ?? 768);
const EVERY = Math.max(1, Math.floor(STEPS / 10));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface Saved {
  name: string;
  step: number;
  savedAt: number;
}

function train(cwd: string, layout: string): Promise<{ seconds: number; saved: Saved[] }> {
  return new Promise((resolve, reject) => {
    const p = spawn('/usr/bin/python3', [loop, layout, 'run', '-', '--steps', String(STEPS), '--every', String(EVERY), '--width', String(WIDTH), '--out-dim', String(WIDTH)], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`train_loop exited ${code}: ${err}`))));
  });
}

async function oneRun(layout: string, withWatch: boolean): Promise<{ stepsPerS: number; delays: number[] }> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-watch-'));
  try {
    spawnSync(ckptBin, ['init', '-q'], { cwd: dir });
    await fs.mkdir(path.join(dir, 'run'));
    const watcher = withWatch ? spawn(ckptBin, ['watch', 'run', '--interval', '1', '--settle', '2', '--allow-unsafe-pickle'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] }) : undefined;
    let stderr = '';
    watcher?.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const r = await train(dir, layout);
    let delays: number[] = [];
    if (watcher) {
      // let the last checkpoints land, then read the commit times
      const want = r.saved.length;
      const end = Date.now() + 60_000;
      let log: { time: number; meta: { step?: number } }[] = [];
      while (Date.now() < end) {
        const l = spawnSync(ckptBin, ['log', '--json'], { cwd: dir, encoding: 'utf8' });
        log = l.status === 0 ? JSON.parse(l.stdout) : [];
        if (log.length >= want) break;
        await new Promise((res) => setTimeout(res, 500));
      }
      watcher.kill('SIGTERM');
      await new Promise((res) => watcher.on('close', res));
      const at = new Map(log.map((c) => [c.meta.step, c.time]));
      delays = r.saved.filter((s) => at.has(s.step)).map((s) => at.get(s.step)! - s.savedAt);
      console.log(`  ${layout} with watch: delays (s) ${delays.map((d) => (d / 1000).toFixed(1)).join(' ')}`);
      for (const l of stderr.split('\n')) if (l && !/committed|watching/.test(l)) console.log(`  watch said: ${l}`);
      if (delays.length < want) console.log(`  (only ${delays.length}/${want} checkpoints committed)`);
    }
    return { stepsPerS: STEPS / r.seconds, delays };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`ckpt watch beside a training loop: ${STEPS} steps, a checkpoint every ${EVERY}, ${WIDTH}x${WIDTH} linear + AdamW; ${ROUNDS} interleaved rounds`);
  console.log(`load average before: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
  for (const layout of ['hf', 'plain']) {
    const without: number[] = [];
    const withW: number[] = [];
    const delays: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      without.push((await oneRun(layout, false)).stepsPerS);
      const w = await oneRun(layout, true);
      withW.push(w.stepsPerS);
      delays.push(...w.delays);
    }
    const a = median(without);
    const b = median(withW);
    console.log(`${layout.padEnd(6)} steps/s without watch ${a.toFixed(2)}, with watch ${b.toFixed(2)}: ${((1 - b / a) * 100).toFixed(1)}% slower`);
    console.log(
      `${''.padEnd(6)} completion -> commit delay: median ${(median(delays) / 1000).toFixed(2)} s, worst ${(Math.max(...delays) / 1000).toFixed(2)} s over ${delays.length} checkpoints` +
        (layout === 'plain' ? ' (includes --settle 2 s: a plain file has no completion marker)' : ''),
    );
  }
  console.log(`load average after: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
}

await main();
