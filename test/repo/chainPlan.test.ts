/**
 * Two ways gc's chain rewrite could lose data, and that it no longer does: a crash part way
 * through the deletions leaving an old copy whose chain breaks two links down, and a chain plan
 * that closes a delta cycle through a chunk in a pack newer than the gc (which gc must not touch).
 */
import { LocalBackend } from '../../src/backend/localBackend.js';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ObjectId } from '../../src/core/objectId.js';
import { mulberry32 } from '../../src/core/seededRandom.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { planChains } from '../../src/repo/chainPlan.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { gc } from '../../src/repo/gc.js';
import { prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { CODEC_DELTA, CODEC_NONE } from '../../src/store/chunkCodec.js';
import { ChunkIndex, decodeIndexFile, encodeIndexFile } from '../../src/store/chunkIndex.js';
import type { ChunkRecord } from '../../src/store/packFormat.js';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-chainplan-')));
  scratch.push(d);
  return d;
}

const id = (c: string) => c.repeat(64) as ObjectId;
const [W, X, Y, Z] = ['a', 'b', 'c', 'd'].map(id);
const rec = (chunk: ObjectId, base?: ObjectId): ChunkRecord => ({
  id: chunk,
  offset: 0,
  stored: 10,
  raw: 100,
  codec: base ? CODEC_DELTA : CODEC_NONE,
  planes: 0,
  ...(base ? { base } : {}),
});

/** Trained-like weights: small random values, each step a small random update to every one. */
function versions(count: number, n: number): Uint8Array[] {
  const rand = mulberry32(11);
  const w = Float32Array.from({ length: n }, () => (rand() - 0.5) * 0.1);
  const out: Uint8Array[] = [];
  for (let v = 0; v < count; v++) {
    if (v > 0) for (let i = 0; i < n; i++) w[i] += (rand() - 0.5) * 1e-5;
    out.push(writeSafetensors([{ name: 'a.weight', dtype: 'F32', shape: [n / 64, 64], data: new Uint8Array(w.buffer.slice(0)) }]));
  }
  return out;
}

/** Commits each version, returning the pack and index file names each commit added. */
async function commitAll(dir: string, files: Uint8Array[]): Promise<{ repo: Repository; added: { idx: string[]; packs: string[] }[] }> {
  const repo = await Repository.init(dir, { chunkSize: 16384 });
  const file = path.join(dir, 'model.safetensors');
  const added: { idx: string[]; packs: string[] }[] = [];
  const list = async (d: string) => new Set(await fs.readdir(d).catch(() => [] as string[]));
  for (let v = 0; v < files.length; v++) {
    const idx0 = await list(repo.store.indexDir);
    const packs0 = await list(repo.store.packsDir);
    await fs.writeFile(file, files[v]);
    await commitFiles(repo, [file], { message: `v${v}`, meta: { step: v } });
    added.push({
      idx: [...(await list(repo.store.indexDir))].filter((n) => !idx0.has(n)),
      packs: [...(await list(repo.store.packsDir))].filter((n) => !packs0.has(n)),
    });
  }
  return { repo, added };
}

/** Every kept version checks out byte-exact and (unless told otherwise) fsck --read-data finds nothing. */
async function expectAllIntact(dir: string, files: Uint8Array[], kept = files.map((_, v) => v), readData = true): Promise<void> {
  const repo = await Repository.open(dir);
  for (const v of kept) {
    const out = path.join(dir, `out${v}.safetensors`);
    await checkout(repo, `HEAD~${files.length - 1 - v}`, { output: out });
    expect(Buffer.compare(await fs.readFile(out), files[v]), `version ${v}`).toBe(0);
  }
  if (readData) expect((await fsck(repo, { readData: true })).faults).toEqual([]);
}

describe('the chunk index after a gc interrupted in its deletions', () => {
  it('takes a copy whose whole base chain resolves, not one whose base merely is indexed', async () => {
    // {X->Z, Z->W} (the old copies; W's index file is gone) and {X whole} (the copy gc wrote)
    const store = await tmp();
    const dir = path.join(store, 'objects', 'index');
    await fs.mkdir(dir, { recursive: true });
    const write = async (pack: ObjectId, records: ChunkRecord[]) => {
      const { id: name, bytes } = encodeIndexFile(pack, 1000, records);
      await fs.writeFile(path.join(dir, `${name}.idx`), bytes);
      return name;
    };
    // the index loads files in name order; make the old copy's file come first, as the case to test
    for (let n = 0; ; n++) {
      await Promise.all((await fs.readdir(dir)).map((f) => fs.rm(path.join(dir, f))));
      const old = await write(n.toString(16).padStart(64, '0') as ObjectId, [rec(X, Z), rec(Z, W)]);
      const fresh = await write(id('f'), [rec(X)]);
      if (old < fresh) break;
    }
    const index = await ChunkIndex.load(new LocalBackend(store));
    expect(index.get(X)?.base).toBeUndefined();
    expect(index.has(W)).toBe(false);
  });

  it('repeats until nothing changes: a copy becomes decodable once its base switches', () => {
    // X's first copy X->Q->Z (Z gone); its other copy X->Y, where Y's first copy Y->Z is broken
    // too but Y also has a whole copy. X is weighed before Y, so only a second round finds X->Y.
    const Q = id('e');
    const index = new ChunkIndex();
    index.addPack(id('1'), id('7'), 1000, [rec(X, Q), rec(Y, Z), rec(Q, Z)]);
    index.addPack(id('2'), id('8'), 1000, [rec(X, Y)]);
    index.addPack(id('3'), id('9'), 1000, [rec(Y)]);
    (index as unknown as { preferDecodableCopies(): void }).preferDecodableCopies();
    expect(index.get(Y)?.base).toBeUndefined();
    expect(index.get(X)?.base).toBe(Y);
  });

  it('a crash leaving an old copy two links from a missing chunk: versions read and gc runs again', async () => {
    const files = versions(10, 8192);
    const dir = await tmp();
    const { repo, added } = await commitAll(dir, files);
    const saved = await tmp();
    // versions 6 and 7 as first committed: 7 coded against 6, 6 against 5
    for (const v of [6, 7]) {
      for (const f of added[v].idx) await fs.copyFile(path.join(repo.store.indexDir, f), path.join(saved, f));
      for (const f of added[v].packs) await fs.copyFile(path.join(repo.store.packsDir, f), path.join(saved, f));
    }
    await prune(repo, { keepLast: 3 });
    // versions 5 and 6 are gone, 7 is re-coded; put the old packs of 6 and 7 back, as a gc that
    // deleted the dead packs first and crashed before the repacked ones would leave them
    for (const v of [6, 7]) {
      for (const f of added[v].idx) await fs.copyFile(path.join(saved, f), path.join(repo.store.indexDir, f));
      for (const f of added[v].packs) await fs.copyFile(path.join(saved, f), path.join(repo.store.packsDir, f));
    }
    const chunks7 = decodeIndexFile(await fs.readFile(path.join(saved, added[7].idx[0])), 'v7').records;
    expect(chunks7.some((r) => r.base)).toBe(true);
    // (fsck --read-data would rightly report the stale copies themselves until gc removes them)
    await expectAllIntact(dir, files, [7, 8, 9], false);
    await gc(await Repository.open(dir));
    for (const v of [6, 7]) expect(await fs.readdir(repo.store.indexDir)).not.toContain(added[v].idx[0]);
    await expectAllIntact(dir, files, [7, 8, 9]);
  });
});

describe('the chain plan around chunks gc must not touch', () => {
  it('never plans a base whose frozen chain leads back to the chunk', () => {
    // W whole and X->W in an old pack, Y->X in a pack newer than the gc; lineage newest first
    const index = new ChunkIndex();
    index.addPack(id('1'), id('8'), 1000, [rec(W), rec(X, W)]);
    index.addPack(id('2'), id('9'), 1000, [rec(Y, X)]);
    const frozen = (c: ObjectId) => c === Y;
    const plan = planChains([[Y, X, W]], new Set([W, X, Y]), index, 50, frozen);
    // Y stays coded against X, so X may not be coded against Y
    expect(plan.changed.get(X)).toBeUndefined();
    expect(plan.changed.has(X)).toBe(true);
    expect(plan.changed.get(W)).toBe(X);
    expect([...plan.keep].sort()).toEqual([W, X, Y].sort());
  });

  it('a store with a pack newer than the gc that codes a chunk against an older one survives gc', async () => {
    const files = versions(3, 8192);
    const dir = await tmp();
    const { repo, added } = await commitAll(dir, files);
    // v0 whole, v1 against v0 in old packs; v2 against v1 in a pack written "after" gc started
    const hour = 3600;
    const now = Date.now() / 1000;
    for (const v of [0, 1]) for (const f of added[v].packs) await fs.utimes(path.join(repo.store.packsDir, f), now - hour, now - hour);
    for (const f of added[2].packs) await fs.utimes(path.join(repo.store.packsDir, f), now + hour, now + hour);
    const v2 = decodeIndexFile(await fs.readFile(path.join(repo.store.indexDir, added[2].idx[0])), 'v2').records;
    expect(v2.some((r) => r.base)).toBe(true);
    await gc(repo);
    await expectAllIntact(dir, files);
    // and a later gc, with every pack old, still leaves everything intact
    for (const f of await fs.readdir(repo.store.packsDir)) await fs.utimes(path.join(repo.store.packsDir, f), now - hour, now - hour);
    await gc(await Repository.open(dir));
    await expectAllIntact(dir, files);
  });
});
