/**
 * Acceptance 2 and 3: writers that take their time are never committed half-written, and a
 * watcher SIGKILLed at random moments and restarted commits nothing twice and misses nothing.
 * All trials of a kind run at once, beside ONE watcher.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createHasher } from '../../src/core/blake3.js';
import { seededRandom } from '../../src/core/seededRandom.js';
import { Repository } from '../../src/repo/repository.js';
import { CLI, ckptJson, cleanupTempDirs, newRepo } from '../e2e/helpers.js';
import { markerLastFolder, slowFile, tempThenRename, type Written } from './slowWriters.js';
import { history, startWatch, waitFor, type WatchProcess } from './watchHelpers.js';

afterAll(cleanupTempDirs);

const b3 = (b: Buffer) => {
  const h = createHasher();
  h.update(b);
  return h.hex();
};

/** Per source: how many commits, and a description of the first mismatch with the final bytes. */
async function audit(repo: string, written: Written[]): Promise<{ counts: Map<string, number>; wrong: string[] }> {
  const r = await Repository.open(repo);
  const counts = new Map<string, number>();
  const wrong: string[] = [];
  const bySource = new Map(written.map((w) => [w.source, w]));
  for (const c of await history(repo)) {
    const source = c.meta.extra?.watch?.source as string | undefined;
    if (!source) continue;
    counts.set(source, (counts.get(source) ?? 0) + 1);
    const w = bySource.get(source);
    if (!w) {
      wrong.push(`${source}: committed but never written`);
      continue;
    }
    const tree = await r.readTree((await r.readCommit(c.id)).tree);
    const want = [...w.files].map(([p, data]) => [p === '' ? path.basename(source) : p, b3(data)] as const).sort();
    const got = Object.entries(tree.files).map(([p, e]) => [p, e.hash] as const).sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(`${source}: committed ${JSON.stringify(got.map(([p, h]) => `${p}:${h.slice(0, 8)}`))}, wrote ${JSON.stringify(want.map(([p, h]) => `${p}:${h.slice(0, 8)}`))}`);
  }
  return { counts, wrong };
}

describe('ckpt watch and slow writers', () => {
  it('commits 20 slow files, 20 marker-last folders and 20 renamed files each once and whole', async () => {
    const repo = await newRepo();
    const root = path.join(repo, 'run');
    await fs.mkdir(root);
    const w = startWatch(repo, 'run', '--interval', '0.3', '--settle', '2');
    let written: Written[] = [];
    try {
      const rnd = seededRandom(7);
      const later = <T>(f: () => Promise<T>) => new Promise<T>((res, rej) => setTimeout(() => f().then(res, rej), Math.floor(rnd() * 2000)));
      written = await Promise.all([
        // 20 pieces over 15 s, one pause of 5 s, longer than --settle, while the file is still open
        ...Array.from({ length: 20 }, (_, i) => later(() => slowFile(root, repo, i, 15_000, 5_000))),
        ...Array.from({ length: 20 }, (_, i) => later(() => markerLastFolder(root, repo, i + 1, 6_000 + 300 * i))),
        ...Array.from({ length: 20 }, (_, i) => later(() => tempThenRename(root, repo, i, 4_000 + 400 * i))),
      ]);
      await waitFor(`60 commits\n${w.log()}`, () => w.commits() >= 60, 30_000);
      await new Promise((r) => setTimeout(r, 700));
    } finally {
      await w.stop();
    }
    const { counts, wrong } = await audit(repo, written);
    expect(wrong, w.log()).toEqual([]);
    expect(written.filter((x) => counts.get(x.source) !== 1).map((x) => `${x.source}: ${counts.get(x.source) ?? 0} commits`)).toEqual([]);
    expect(counts.size).toBe(60);
  });

  it('SIGKILLed at 20 random moments and restarted, it commits nothing twice, misses nothing, and fsck is clean', async () => {
    const repo = await newRepo();
    const root = path.join(repo, 'run');
    await fs.mkdir(root);
    const rnd = seededRandom(11);
    let w: WatchProcess = startWatch(repo, 'run', '--interval', '0.2', '--settle', '1');
    let kills = 0;
    let stopKilling = false;
    const killer = (async () => {
      while (kills < 20 && !stopKilling) {
        await new Promise((r) => setTimeout(r, 250 + Math.floor(rnd() * 700)));
        w.child.kill('SIGKILL');
        await w.exited;
        kills++;
        w = startWatch(repo, 'run', '--interval', '0.2', '--settle', '1');
      }
    })();
    let written: Written[] = [];
    try {
      const later = <T>(f: () => Promise<T>) => new Promise<T>((res, rej) => setTimeout(() => f().then(res, rej), Math.floor(rnd() * 8000)));
      written = await Promise.all([
        ...Array.from({ length: 8 }, (_, i) => later(() => slowFile(root, repo, i, 4_000, 1_500))),
        ...Array.from({ length: 8 }, (_, i) => later(() => markerLastFolder(root, repo, i + 1, 3_000))),
        ...Array.from({ length: 8 }, (_, i) => later(() => tempThenRename(root, repo, i, 2_000))),
      ]);
      await killer;
      // the last watcher finishes the work; a --once run after it must find nothing left
      await waitFor(`all ${written.length} committed`, async () => (await history(repo)).length >= written.length, 30_000);
    } finally {
      stopKilling = true;
      await killer;
      await w.stop();
    }
    expect(kills).toBe(20);
    const once = spawnSync(process.execPath, [CLI, 'watch', 'run', '--once', '--settle', '1', '--json'], { cwd: repo, encoding: 'utf8' });
    expect(once.status, once.stderr).toBe(0);
    expect(JSON.parse(once.stdout).commits).toEqual([]);
    const { counts, wrong } = await audit(repo, written);
    expect(wrong).toEqual([]);
    expect(written.filter((x) => counts.get(x.source) !== 1).map((x) => `${x.source}: ${counts.get(x.source) ?? 0} commits`)).toEqual([]);
    const fsck = await ckptJson(repo, 'fsck', '--read-data');
    expect(JSON.stringify(fsck)).not.toMatch(/"(corrupt|missing|errors?)":\s*\[\s*\{/);
  });
});
