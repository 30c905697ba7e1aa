/**
 * Writers that take their time, as real ones do on a busy machine or a slow disk. Each returns the
 * watcher's name for what it wrote (its path from the repository root) and the final bytes of
 * every file, so a test can tell a complete commit from a partial one.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { seededRandom } from '../../src/core/seededRandom.js';

export interface Written {
  source: string;
  /** Path inside the checkpoint ('' for a single file) -> final bytes. */
  files: Map<string, Buffer>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Gaps (ms) summing to about `totalMs`, one of them longer than `longMs`. */
function gaps(seed: number, n: number, totalMs: number, longMs: number): number[] {
  const rnd = seededRandom(seed);
  const w = Array.from({ length: n }, () => 0.2 + rnd());
  const sum = w.reduce((a, b) => a + b, 0);
  const out = w.map((x) => Math.round((x / sum) * (totalMs - longMs)));
  out[Math.floor(rnd() * n)] += longMs;
  return out;
}

/** One file written in 20 pieces over `totalMs`, its descriptor open throughout. */
export async function slowFile(root: string, repo: string, i: number, totalMs: number, longMs: number): Promise<Written> {
  const file = path.join(root, `slow_${i}.bin`);
  const data = randomBytes(20 * 4096 + i);
  const fh = await fs.open(file, 'w');
  try {
    const g = gaps(1000 + i, 20, totalMs, longMs);
    for (let k = 0; k < 20; k++) {
      const piece = data.subarray(Math.floor((k * data.length) / 20), Math.floor(((k + 1) * data.length) / 20));
      await fh.write(piece);
      await sleep(g[k]);
    }
  } finally {
    await fh.close();
  }
  return { source: path.relative(repo, file), files: new Map([['', data]]) };
}

/** A Trainer-style folder: two files in pieces, then trainer_state.json last, itself in two writes. */
export async function markerLastFolder(root: string, repo: string, i: number, totalMs: number): Promise<Written> {
  const dir = path.join(root, `checkpoint-${i}`);
  await fs.mkdir(dir, { recursive: true });
  const files = new Map<string, Buffer>([
    ['pytorch_model.bin', randomBytes(30_000 + i)],
    ['optimizer.bin', randomBytes(50_000 + i)],
  ]);
  const g = gaps(2000 + i, 10, totalMs * 0.8, 0);
  let k = 0;
  for (const [name, data] of files) {
    // append mode, closed between pieces: only the marker can say when the folder is whole
    for (let p = 0; p < 5; p++) {
      await fs.appendFile(path.join(dir, name), data.subarray(Math.floor((p * data.length) / 5), Math.floor(((p + 1) * data.length) / 5)));
      await sleep(g[k++]);
    }
  }
  const state = Buffer.from(JSON.stringify({ global_step: i, epoch: 1, log_history: [{ loss: 1 / i, step: i }] }, null, 2));
  const half = Math.floor(state.length / 2);
  await fs.appendFile(path.join(dir, 'trainer_state.json'), state.subarray(0, half));
  await sleep(totalMs * 0.2);
  await fs.appendFile(path.join(dir, 'trainer_state.json'), state.subarray(half));
  files.set('trainer_state.json', state);
  return { source: path.relative(repo, dir), files };
}

/** Written slowly to a temporary name, then renamed to its final one. */
export async function tempThenRename(root: string, repo: string, i: number, totalMs: number): Promise<Written> {
  const file = path.join(root, `model_${i}.bin`);
  const tmp = `${file}.tmp`;
  const data = randomBytes(40_000 + i);
  const g = gaps(3000 + i, 20, totalMs, 0);
  for (let k = 0; k < 20; k++) {
    // closed between pieces, so only the name tells
    await fs.appendFile(tmp, data.subarray(Math.floor((k * data.length) / 20), Math.floor(((k + 1) * data.length) / 20)));
    await sleep(g[k]);
  }
  await fs.rename(tmp, file);
  return { source: path.relative(repo, file), files: new Map([['', data]]) };
}
