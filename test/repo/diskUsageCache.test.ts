/**
 * `ckpt du` reads the usage cache (src/store/usageCache.ts) instead of every commit's tree and
 * manifests and a stat per object file. The cache must never change an answer: du with it equals
 * du without it, and both equal the figures computed from gc's own reachability (every object
 * file read), through branches, a deleted branch, prune and gc; a damaged cache is ignored and
 * rewritten by the next commit; du itself never writes the store.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ObjectId } from '../../src/core/objectId.js';
import { createRef, deleteRef, switchBranch } from '../../src/repo/branches.js';
import { commitFiles } from '../../src/repo/commit.js';
import { diskUsage, type DiskUsage } from '../../src/repo/diskUsage.js';
import { gc } from '../../src/repo/gc.js';
import { prune } from '../../src/repo/prune.js';
import { findRoots, markReachable } from '../../src/repo/reachability.js';
import { Repository } from '../../src/repo/repository.js';
import { readCacheFile } from '../../src/store/cacheFile.js';
import { UsageCache, emptyUsage } from '../../src/store/usageCache.js';
import { cleanupTempDirs, tempDir, writeBigSafetensors } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

/** The figures of du as the code before the usage cache computed them: from gc's mark phase. */
async function oracle(repo: Repository): Promise<Omit<DiskUsage, 'disk' | 'dedupRatio' | 'compressionRatio' | 'branches'> & { branches: Record<string, number[]> }> {
  const index = await repo.store.reloadIndex({ verified: true });
  const reach = await markReachable(repo, await findRoots(repo), index);
  const figures = (ids: Iterable<ObjectId>) => {
    let logical = 0;
    let n = 0;
    const chunks = new Set<ObjectId>();
    for (const id of ids) {
      if (!reach.live.has(id)) continue;
      n++;
      for (const e of Object.values(reach.trees.get(reach.commits.get(id)!.tree)!.files)) {
        logical += e.size;
        for (const s of reach.manifests.get(e.manifest)!.segments) for (const [c] of s.chunks) chunks.add(c);
      }
    }
    let unique = 0;
    for (const c of chunks) unique += index.get(c)?.raw ?? 0;
    const withBases = new Set<ObjectId>();
    for (const c of chunks) for (let r = index.get(c); r && !withBases.has(r.id); r = r.base ? index.get(r.base) : undefined) withBases.add(r.id);
    let stored = 0;
    for (const c of withBases) stored += index.get(c)!.stored;
    return { commits: n, logical, unique, chunks: stored };
  };
  let prunedLogical = 0;
  for (const [id, c] of reach.commits) if (!reach.live.has(id)) for (const e of Object.values(reach.trees.get(c.tree)!.files)) prunedLogical += e.size;
  const branches: Record<string, number[]> = {};
  for (const [ref, tip] of await repo.store.refs.list('refs/heads/')) {
    const members = new Set<ObjectId>();
    const stack = [tip];
    while (stack.length) {
      const id = stack.pop()!;
      if (members.has(id)) continue;
      members.add(id);
      stack.push(...(reach.commits.get(id)?.parents ?? []));
    }
    const f = figures(members);
    branches[ref.slice('refs/heads/'.length)] = [f.commits, f.logical, f.unique, f.chunks];
  }
  return { ...figures(reach.commits.keys()), prunedCommits: reach.commits.size - reach.live.size, prunedLogical, codeBytes: 0, branches };
}

/** What the filesystem says the store takes. */
async function filesBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
  return n;
}

const shape = (u: DiskUsage) => ({
  commits: u.commits,
  logical: u.logical,
  unique: u.unique,
  chunks: u.chunks,
  prunedCommits: u.prunedCommits,
  prunedLogical: u.prunedLogical,
  codeBytes: u.codeBytes,
  branches: Object.fromEntries(u.branches.map((b) => [b.name, [b.commits, b.logical, b.unique, b.chunks]])),
});

/** du with the cache, du with the cache gone: equal to each other, to the oracle and to the disk. */
async function checkDu(dir: string): Promise<DiskUsage> {
  const cacheFile = path.join(dir, '.ckpt', 'usage-cache');
  const before = await fs.readFile(cacheFile).catch(() => undefined);
  const warm = await diskUsage(await Repository.open(dir));
  // du only reads: the cache is exactly as it was
  expect(await fs.readFile(cacheFile).catch(() => undefined)).toEqual(before);
  expect(warm.disk.total).toBe(await filesBytes(path.join(dir, '.ckpt')));
  const { codeBytes: _c, ...want } = await oracle(await Repository.open(dir));
  expect(shape(warm)).toEqual({ ...want, codeBytes: 0 });
  await fs.rm(cacheFile, { force: true });
  const cold = await diskUsage(await Repository.open(dir));
  expect(shape(cold)).toEqual(shape(warm));
  expect(cold.disk).toEqual({ ...warm.disk, other: warm.disk.other - (before?.length ?? 0), total: warm.disk.total - (before?.length ?? 0) });
  if (before) await fs.writeFile(cacheFile, before);
  return warm;
}

async function step(repo: Repository, dir: string, seed: number, message: string) {
  const file = path.join(dir, 'm.safetensors');
  await writeBigSafetensors(file, [
    { name: 'shared', count: 4096, seed: 1 },
    { name: 'moving', count: 4096, seed },
  ]);
  return commitFiles(repo, [file], { message, meta: { step: seed } });
}

describe('du and the usage cache', () => {
  it('gives the answers of a cold computation through branches, prune and gc', async () => {
    const dir = await tempDir('ckpt-du-cache-');
    const repo = await Repository.init(dir, { chunkSize: 4096 });
    for (let s = 1; s <= 6; s++) await step(repo, dir, s, `main ${s}`);
    // the commits this store wrote are in the cache
    const entries = new UsageCache(path.join(dir, '.ckpt', 'usage-cache'), path.join(dir, '.ckpt', 'tmp')).read();
    expect(entries.commits.size).toBe(6);
    let u = await checkDu(dir);
    expect(u.commits).toBe(6);

    await createRef(repo, 'heads', 'side');
    await switchBranch(repo, 'side', false);
    for (let s = 7; s <= 9; s++) await step(repo, dir, s, `side ${s}`);
    await switchBranch(repo, 'main', false);
    u = await checkDu(dir);
    expect(u.branches.map((b) => b.name)).toEqual(['main', 'side']);

    // prune marks commits; their data stays until gc
    await prune(repo, { keepLast: 2 }, { noGc: true });
    u = await checkDu(dir);
    expect(u.prunedCommits).toBeGreaterThan(0);
    await gc(repo);
    await checkDu(dir);

    // a deleted branch: its commits stay reachable through the reflog until gc ends that
    await deleteRef(repo, 'heads', 'side');
    await checkDu(dir);
    await gc(repo, { reflogWindowMs: 0 });
    u = await checkDu(dir);
    expect(u.branches.map((b) => b.name)).toEqual(['main']);

    // a commit after gc: appended to the cache; du still agrees
    await step(repo, dir, 10, 'after gc');
    await checkDu(dir);
  }, 60_000);

  it('ignores a damaged cache, and the next commit rewrites it whole', async () => {
    const dir = await tempDir('ckpt-du-damaged-');
    const repo = await Repository.init(dir, { chunkSize: 4096 });
    for (let s = 1; s <= 3; s++) await step(repo, dir, s, `c ${s}`);
    const file = path.join(dir, '.ckpt', 'usage-cache');
    const good = await fs.readFile(file);
    expect(readCacheFile(file, 'CKUC', 1)).toMatchObject({ intact: true, segments: 3 });

    // a flipped byte inside the first segment's payload: nothing past it is read
    const bad = Buffer.from(good);
    bad[8 + 36 + 5] ^= 0xff;
    await fs.writeFile(file, bad);
    expect(new UsageCache(file, path.join(dir, '.ckpt', 'tmp')).read().commits.size).toBe(0);
    await checkDu(dir);

    // a payload that passes its hash but lies (sizes of files that are not those sizes) would
    // be believed; garbage that does not decode is not
    await fs.writeFile(file, Buffer.concat([good.subarray(0, 8), Buffer.from([4, 0, 0, 0]), Buffer.alloc(32), Buffer.from([9, 9, 9, 9])]));
    expect(new UsageCache(file, path.join(dir, '.ckpt', 'tmp')).read().commits.size).toBe(0);
    await checkDu(dir);

    await fs.writeFile(file, bad);
    await step(repo, dir, 4, 'c 4');
    const c = readCacheFile(file, 'CKUC', 1);
    expect(c).toMatchObject({ intact: true, segments: 1 });
    // what the damage hid is read from the objects by du, and the answers stay right
    await checkDu(dir);
  }, 60_000);

  it('keeps every entry when writers append at once', async () => {
    const dir = await tempDir('ckpt-du-race-');
    const file = path.join(dir, 'usage-cache');
    const writers = Array.from({ length: 8 }, () => new UsageCache(file, dir));
    const id = (n: number, k: string) => `${k}${n.toString(16).padStart(8, '0')}`.padEnd(64, '0');
    await Promise.all(
      writers.map((w, i) => {
        const e = emptyUsage();
        e.commits.set(id(i, 'c'), { parents: [], logical: i, manifests: [id(i, 'a')], code: [] });
        e.manifests.set(id(i, 'a'), [id(i, 'b')]);
        e.sizes.get('pack')!.set(id(i, 'd'), 100 + i);
        return w.record(e);
      }),
    );
    const all = new UsageCache(file, dir).read();
    expect(all.commits.size).toBe(8);
    expect(all.manifests.size).toBe(8);
    expect(all.sizes.get('pack')!.size).toBe(8);
    for (let i = 0; i < 8; i++) expect(all.commits.get(id(i, 'c'))!.logical).toBe(i);
  });
});
