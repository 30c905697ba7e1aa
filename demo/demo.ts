/**
 * `npm run demo`: a newcomer's first look. In a temporary folder it makes a small model's
 * checkpoints the way a training loop would (some tensors change every step, the embedding is
 * frozen), commits each with ckpt, prints the log and a commit, checks one out, and proves the
 * bytes equal.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../src/core/seededRandom.js';
import { writeSafetensors } from '../src/formats/safetensors.js';

const ckptBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');

function gaussian(n: number, std: number, r: () => number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * std;
  return a;
}

function run(cwd: string, args: string[]): string {
  process.stdout.write(`\n$ ckpt ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(' ')}\n`);
  const out = execFileSync(process.execPath, [ckptBin, ...args], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(out);
  return out;
}

async function main(): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-demo-'));
  process.stdout.write(`ckpt demo in ${dir}\n`);
  const r = seededRandom(42);
  const width = 256;
  const model: Record<string, Float32Array> = { 'embed.weight': gaussian(1024 * width, 0.02, r) };
  for (let b = 0; b < 4; b++) {
    model[`blocks.${b}.attn.weight`] = gaussian(width * width * 3, 0.02, r);
    model[`blocks.${b}.mlp.weight`] = gaussian(width * width * 4, 0.02, r);
    model[`blocks.${b}.norm.weight`] = new Float32Array(width).fill(1);
  }
  model['head.weight'] = gaussian(width * 256, 0.02, r);

  run(dir, ['init']);
  await fs.mkdir(path.join(dir, 'ckpts'));
  const files: string[] = [];
  for (let step = 100; step <= 400; step += 100) {
    // a fine-tune: blocks 0-1 and the embedding are frozen, the rest moves a little each step
    for (const [name, t] of Object.entries(model)) {
      if (name.startsWith('embed') || name.startsWith('blocks.0') || name.startsWith('blocks.1')) continue;
      for (let i = 0; i < t.length; i += 7) t[i] += (r() - 0.5) * 1e-3;
    }
    const bytes = writeSafetensors(
      Object.entries(model).map(([name, t]) => ({ name, dtype: 'F32', shape: name.includes('norm') ? [width] : [t.length / width, width], data: new Uint8Array(t.buffer.slice(0)) })),
      { step: String(step) },
    );
    const file = path.join('ckpts', `step_${step}.safetensors`);
    await fs.writeFile(path.join(dir, file), bytes);
    files.push(file);
    const loss = (2.5 / Math.log(step)).toFixed(4);
    run(dir, ['commit', file, '-m', `step ${step}`, '--step', String(step), '--metric', `val_loss=${loss}`]);
  }
  run(dir, ['log']);
  run(dir, ['show', 'HEAD~2']);
  run(dir, ['tag', 'best', 'best:val_loss']);
  run(dir, ['checkout', 'HEAD~2', '-o', 'restored.safetensors']);
  run(dir, ['view', '-o', 'view.html']);
  const a = await fs.readFile(path.join(dir, files[1]));
  const b = await fs.readFile(path.join(dir, 'restored.safetensors'));
  if (!a.equals(b)) throw new Error('restored file differs from the original');
  const logical = (await Promise.all(files.map((f) => fs.stat(path.join(dir, f))))).reduce((n, s) => n + s.size, 0);
  let stored = 0;
  for (const sub of ['packs', 'index']) {
    for (const f of await fs.readdir(path.join(dir, '.ckpt', 'objects', sub))) stored += (await fs.stat(path.join(dir, '.ckpt', 'objects', sub, f))).size;
  }
  process.stdout.write(
    `\nrestored.safetensors is byte-identical to ${files[1]} (${a.length} bytes).\n` +
      `4 checkpoints, ${(logical / 2 ** 20).toFixed(1)} MiB of files, stored in ${(stored / 2 ** 20).toFixed(1)} MiB of packs ` +
      `(${((stored / logical) * 100).toFixed(0)}%): frozen tensors are stored once.\n` +
      `Open ${path.join(dir, 'view.html')} in a browser for the history, curves and per-layer change.\n` +
      `The demo folder stays at ${dir}; try \`cd ${dir} && ${ckptBin} log\`.\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`demo failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
