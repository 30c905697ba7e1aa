/**
 * A plain `torch.save` loop that rotates faster than --settle: each file is written in pieces over
 * about 3 s and deleted 0.5 s after its last write, before it could settle. The watcher links each
 * file when it first sees it, so every one is still committed once, byte-exact, and never early.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHasher } from '../../src/core/blake3.js';
import { Repository } from '../../src/repo/repository.js';
import { Watcher } from '../../src/watch/watcher.js';
import { cleanupTempDirs, newRepo } from '../e2e/helpers.js';
import { history, startWatch, waitFor } from './watchHelpers.js';

afterAll(cleanupTempDirs);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const b3 = (b: Buffer) => {
  const h = createHasher();
  h.update(b);
  return h.hex();
};

/** 12 pieces over ~3 s, closed after the last, deleted 0.5 s later. */
async function writeThenRotate(root: string, i: number): Promise<{ name: string; data: Buffer }> {
  const name = `rotated_${i}.bin`;
  const file = path.join(root, name);
  const data = randomBytes(12 * 8192 + i);
  const fh = await fs.open(file, 'w');
  for (let k = 0; k < 12; k++) {
    await fh.write(data.subarray(Math.floor((k * data.length) / 12), Math.floor(((k + 1) * data.length) / 12)));
    if (k < 11) await sleep(270);
  }
  await fh.close();
  await sleep(500);
  await fs.unlink(file);
  return { name, data };
}

describe('ckpt watch and files rotated away before they settle', () => {
  it('commits each of 6 files deleted 0.5 s after their last write with --settle 2, once and whole', async () => {
    const repo = await newRepo();
    const root = path.join(repo, 'run');
    await fs.mkdir(root);
    const w = startWatch(repo, 'run', '--interval', '0.2', '--settle', '2');
    let written: { name: string; data: Buffer }[] = [];
    try {
      written = await Promise.all(Array.from({ length: 6 }, (_, i) => sleep(i * 400).then(() => writeThenRotate(root, i))));
      await waitFor(`6 commits\n${w.log()}`, () => w.commits() >= 6, 15_000);
      await sleep(500);
    } finally {
      await w.stop();
    }
    const r = await Repository.open(repo);
    const got = new Map<string, string[]>();
    for (const c of await history(repo)) {
      const source = c.meta.extra?.watch?.source as string;
      const tree = await r.readTree((await r.readCommit(c.id)).tree);
      got.set(source, [...(got.get(source) ?? []), JSON.stringify(Object.entries(tree.files).map(([p, e]) => [p, e.hash]))]);
    }
    for (const { name, data } of written) expect(got.get(`run/${name}`), w.log()).toEqual([JSON.stringify([[name, b3(data)]])]);
    expect(got.size).toBe(6);
    // the links made at first sight are gone once the watcher stops
    expect((await fs.readdir(path.join(repo, '.ckpt', 'tmp'))).filter((n) => n.startsWith('watch-'))).toEqual([]);
  }, 40_000);

  it('judges a deleted checkpoint by its convention on its link: a Trainer folder without trainer_state.json is never committed', async () => {
    const repo = await newRepo();
    const root = path.join(repo, 'run');
    await fs.mkdir(path.join(root, 'checkpoint-5'), { recursive: true });
    const data = randomBytes(5000);
    await fs.writeFile(path.join(root, 'checkpoint-5', 'model.bin'), randomBytes(3000));
    await fs.writeFile(path.join(root, 'plain.bin'), data);
    const w = await Watcher.open(await Repository.open(repo), { dir: root, intervalMs: 0, settleMs: 200, log: () => undefined });
    expect(await w.look()).toEqual([]);
    await fs.rm(path.join(root, 'checkpoint-5'), { recursive: true });
    await fs.rm(path.join(root, 'plain.bin'));
    await sleep(300);
    const made = [...(await w.look()), ...(await w.look()), ...(await w.look())];
    await w.close();
    expect(made.map((c) => c.source)).toEqual(['run/plain.bin']);
    const r = await Repository.open(repo);
    const tree = await r.readTree((await r.readCommit(made[0].id)).tree);
    expect(Object.entries(tree.files).map(([p, e]) => [p, e.hash])).toEqual([['plain.bin', b3(data)]]);
  });
});
