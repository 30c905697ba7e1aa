/**
 * Library-level tests of retention, gc and the store lock handshake: rules, edge cases and crash
 * points that the end-to-end tests cannot reach quickly.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { createRef } from '../../src/repo/branches.js';
import { fsck } from '../../src/repo/fsck.js';
import { gc } from '../../src/repo/gc.js';
import { parseDuration, prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { acquireExclusive, acquireShared } from '../../src/backend/storeLocks.js';

const roots: string[] = [];
afterAll(async () => {
  for (const r of roots) await fs.rm(r, { recursive: true, force: true });
});

let now = Date.UTC(2026, 0, 1);
let repo: Repository;
let dir: string;

function tensor(seed: number, n = 16384): Uint8Array {
  const f = new Float32Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    f[i] = (a / 2 ** 32 - 0.5) * 0.1;
  }
  return new Uint8Array(f.buffer);
}

async function put(i: number, meta: { step?: number; metrics?: Record<string, number> } = {}, branch?: string): Promise<string> {
  const file = path.join(dir, 'm.safetensors');
  await fs.writeFile(
    file,
    writeSafetensors([
      { name: 'shared', dtype: 'F32', shape: [16384], data: tensor(1) },
      { name: 'own', dtype: 'F32', shape: [16384], data: tensor(100 + i) },
    ]),
  );
  now += 3600_000;
  return (await commitFiles(repo, [file], { message: `c${i}`, meta, branch })).id;
}

beforeEach(async () => {
  dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-tidy-')));
  roots.push(dir);
  repo = await Repository.init(dir, { chunkSize: 65536, clock: () => now });
});

describe('parseDuration', () => {
  it('reads restic-style durations and refuses the rest', () => {
    expect(parseDuration('7d')).toBe(7 * 86_400_000);
    expect(parseDuration('1w3d')).toBe(10 * 86_400_000);
    expect(parseDuration('90m')).toBe(90 * 60_000);
    for (const bad of ['', '7', 'd', '7days', '-1d', '1d ']) expect(() => parseDuration(bad)).toThrow(/invalid duration/);
  });
});

describe('prune rules', () => {
  it('refuses an empty policy and --keep-best without --metric', async () => {
    await put(0);
    await expect(prune(repo, {})).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(prune(repo, { keepBest: 1 })).rejects.toMatchObject({ code: 'E_USAGE' });
  });

  it('keeps a commit if any rule keeps it; heads and tags always; max mode for accuracy', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await put(i, { step: i * 250, metrics: { acc: i === 3 ? 0.99 : 0.5 } }));
    await createRef(repo, 'tags', 'release', ids[1]);
    const r = await prune(repo, { keepLast: 2, keepBest: 1, metric: 'acc', keepEverySteps: 1000 }, { noGc: true });
    const kept = new Set(r.kept.map((d) => d.id));
    // last 2: 8, 9; best acc (max, the default for non-loss names): 3; every 1000 steps: first of
    // each bucket: steps 0, 1000, 2000 -> 0, 4, 8; tag: 1
    expect([...kept].sort()).toEqual([0, 1, 3, 4, 8, 9].map((i) => ids[i]).sort());
    expect(r.pruned.map((d) => d.id).sort()).toEqual([2, 5, 6, 7].map((i) => ids[i]).sort());
    expect(r.kept.find((d) => d.id === ids[1])!.reasons).toContain('tag release');
  });

  it('keep-within counts from the repository clock; a second run reports earlier prunes', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await put(i));
    // commits are an hour apart and the clock stands at the newest: 2h reaches back to c2, inclusive
    const r = await prune(repo, { keepWithinMs: parseDuration('2h') }, { noGc: true });
    expect(r.kept.map((d) => d.id).sort()).toEqual([ids[2], ids[3], ids[4]].sort());
    const again = await prune(repo, { keepWithinMs: parseDuration('2h') }, { noGc: true });
    expect(again.pruned).toEqual([]);
    expect(again.alreadyPruned).toBe(2);
  });

  it('applies rules per branch: the last N of every branch are kept', async () => {
    const main = [await put(0), await put(1), await put(2)];
    const exp = [await put(3, {}, 'exp'), await put(4, {}, 'exp')];
    const r = await prune(repo, { keepLast: 1 }, { noGc: true });
    expect(new Set(r.kept.map((d) => d.id))).toEqual(new Set([main[2], exp[1]]));
  });

  it('checkout of a pruned commit throws E_PRUNED with the time; the kept ones still check out after gc', async () => {
    const ids = [await put(0), await put(1), await put(2)];
    const r = await prune(repo, { keepLast: 1 });
    expect(r.gc!.packs.deleted + r.gc!.packs.repacked).toBeGreaterThan(0);
    await expect(checkout(repo, ids[0], { output: path.join(dir, 'out0') })).rejects.toMatchObject({
      code: 'E_PRUNED',
      message: expect.stringContaining(`was pruned at ${new Date(now).toISOString()}`),
    });
    const ok = await checkout(repo, ids[2], { output: path.join(dir, 'out2') });
    expect(ok.files[0].size).toBeGreaterThan(0);
    expect((await fsck(repo, { readData: true })).faults).toEqual([]);
  });
});

describe('gc', () => {
  it('keeps what a recent reflog entry points to, and drops it once the entry is older than the window', async () => {
    await put(0);
    const side = await put(1, {}, 'side');
    await repo.store.refs.cas('refs/heads/side', side, null, 'branch: deleted');
    now += 3600_000;
    const kept = await gc(repo);
    expect(kept.packs.deleted).toBe(0);
    expect(await repo.store.meta.has(side)).toBe(true);
    const dropped = await gc(repo, { reflogWindowMs: 60_000 });
    expect(dropped.packs.deleted + dropped.packs.repacked).toBeGreaterThan(0);
    expect(await repo.store.meta.has(side)).toBe(false);
    expect((await fsck(repo, { readData: true })).faults).toEqual([]);
  });

  it('a crash after repacking, before the old packs are deleted, loses nothing; the next gc cleans up', async () => {
    const a = await put(0);
    await put(1);
    await prune(repo, { keepLast: 1 }, { noGc: true });
    const packs = path.join(repo.store.dir, 'objects', 'packs');
    const index = path.join(repo.store.dir, 'objects', 'index');
    const beforePacks = await fs.readdir(packs);
    const beforeIndex = new Map<string, Buffer>();
    for (const n of await fs.readdir(index)) beforeIndex.set(n, await fs.readFile(path.join(index, n)));
    const savedPacks = new Map<string, Buffer>();
    for (const n of beforePacks) savedPacks.set(n, await fs.readFile(path.join(packs, n)));
    await gc(repo);
    // put the old index files and packs back: the state of a crash between the new index and
    // the deletions (restic order), with duplicates of every live chunk
    for (const [n, b] of beforeIndex) await fs.writeFile(path.join(index, n), b);
    for (const [n, b] of savedPacks) await fs.writeFile(path.join(packs, n), b);
    await repo.store.reloadIndex();
    expect((await fsck(repo, { readData: true })).faults).toEqual([]);
    const head = await repo.headCommit();
    await checkout(repo, head!, { output: path.join(dir, 'h') });
    const again = await gc(repo);
    expect(again.packs.deleted + again.packs.repacked).toBeGreaterThan(0);
    expect((await fsck(repo, { readData: true })).faults).toEqual([]);
    await expect(checkout(repo, a, { output: path.join(dir, 'a') })).rejects.toMatchObject({ code: 'E_PRUNED' });
  });

  it('never deletes an unreferenced file newer than its own start (a writer that ignored the lock)', async () => {
    await put(0);
    const stray = path.join(repo.store.dir, 'objects', 'meta', 'ff', 'f'.repeat(62));
    await fs.mkdir(path.dirname(stray), { recursive: true });
    await fs.writeFile(stray, 'x');
    const future = new Date(Date.now() + 60_000);
    await fs.utimes(stray, future, future);
    await gc(repo);
    await expect(fs.access(stray)).resolves.toBeUndefined();
  });
});

describe('store lock handshake', () => {
  it('gc waits for a running commit and gives up with E_LOCKED naming it', async () => {
    const held = await acquireShared(repo.store.locksDir, 'commit');
    await expect(acquireExclusive(repo.store.locksDir, { timeoutMs: 200, pollMs: 10 })).rejects.toMatchObject({
      code: 'E_LOCKED',
      message: expect.stringContaining('"purpose":"commit"'),
    });
    // the failed gc left no gc.lock behind: commits are not blocked
    const second = await acquireShared(repo.store.locksDir, 'commit', { timeoutMs: 200 });
    await second.release();
    await held.release();
    const gcLock = await acquireExclusive(repo.store.locksDir, { timeoutMs: 200 });
    await gcLock.release();
  });

  it('a commit waits while gc holds its lock and proceeds when it is released', async () => {
    const gcLock = await acquireExclusive(repo.store.locksDir, { timeoutMs: 200 });
    await expect(acquireShared(repo.store.locksDir, 'commit', { timeoutMs: 150, pollMs: 10 })).rejects.toMatchObject({ code: 'E_LOCKED' });
    const waiting = acquireShared(repo.store.locksDir, 'commit', { timeoutMs: 5000, pollMs: 10 });
    await new Promise((r) => setTimeout(r, 100));
    await gcLock.release();
    await (await waiting).release();
    expect(await fs.readdir(path.join(repo.store.locksDir, 'shared'))).toEqual([]);
  });

  it('breaks the locks of dead processes', async () => {
    const shared = path.join(repo.store.locksDir, 'shared');
    await fs.mkdir(shared, { recursive: true });
    // a pid far above pid_max on Linux: certainly not running
    await fs.writeFile(path.join(shared, '99999999-dead.lock'), JSON.stringify({ pid: 99_999_999, host: os.hostname(), time: 0 }));
    await fs.writeFile(path.join(repo.store.locksDir, 'gc.lock'), JSON.stringify({ pid: 99_999_999, host: os.hostname(), time: 0 }));
    const c = await acquireShared(repo.store.locksDir, 'commit', { timeoutMs: 500 });
    await c.release();
    const g = await acquireExclusive(repo.store.locksDir, { timeoutMs: 500 });
    await g.release();
  });
});
