/**
 * Acceptance 2 (retention keeps the history and drops the data) and 5 (du agrees with the
 * filesystem and with the committed file sizes).
 *
 * 20 commits of a 1 MiB model whose tensors share data in every way the store handles: one never
 * changes (dedup), one is new each time, one drifts by a few values (delta-coded against the
 * parent's chunk, so pruned commits hold bases of kept ones), one changes every fifth commit.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ObjectId } from '../../src/core/objectId.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { Repository } from '../../src/repo/repository.js';
import { decodeIndexFile } from '../../src/store/chunkIndex.js';
import { packTrailer, PACK_PREAMBLE, type ChunkRecord } from '../../src/store/packFormat.js';
import { ckpt, ckptJson, ckptOk, cleanupTempDirs, newRepo, randomF32, tempDir } from './helpers.js';

const N = 65536; // floats per tensor: 256 KiB, four chunks of 64 KiB
const COMMITS = 20;
const BEST = [6, 12];
const LAST = [17, 18, 19];
const loss = (i: number) => (i === 6 ? 0.1 : i === 12 ? 0.2 : 0.5 + 0.01 * i);

function model(i: number): Uint8Array {
  const drift = new Float32Array(randomF32(7, N).buffer.slice(0));
  for (let j = 0; j <= i; j++) drift[(j * 4099) % N] = i * 0.01 + j;
  return writeSafetensors([
    { name: 'embed', dtype: 'F32', shape: [256, 256], data: randomF32(1, N) },
    { name: 'head', dtype: 'F32', shape: [256, 256], data: randomF32(100 + i, N) },
    { name: 'drift', dtype: 'F32', shape: [256, 256], data: new Uint8Array(drift.buffer) },
    { name: 'slow', dtype: 'F32', shape: [256, 256], data: randomF32(200 + Math.floor(i / 5), N) },
  ]);
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Bytes of the regular files under `dir`, as `find -printf %s` sees them (not ckpt's own walk). */
function filesBytes(dir: string): number {
  const r = spawnSync('find', [dir, '-type', 'f', '-printf', '%s\\n'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.split('\n').filter(Boolean).reduce((n, s) => n + Number(s), 0);
}

async function indexFiles(store: string): Promise<{ pack: ObjectId; packSize: number; records: ChunkRecord[] }[]> {
  const dir = path.join(store, 'objects', 'index');
  const out = [];
  for (const n of await fs.readdir(dir)) out.push(decodeIndexFile(await fs.readFile(path.join(dir, n)), n));
  return out;
}

let dir: string;
const ids: ObjectId[] = [];
const hashes: string[] = [];
let fileSize = 0;

afterAll(cleanupTempDirs);

beforeAll(async () => {
  dir = await newRepo('--chunk-size', '65536');
  for (let i = 0; i < COMMITS; i++) {
    const bytes = model(i);
    fileSize = bytes.length;
    hashes.push(sha(bytes));
    await fs.writeFile(path.join(dir, 'model.safetensors'), bytes);
    const r = await ckptJson(dir, 'commit', 'model.safetensors', '-m', `step ${i * 100}`, '--step', String(i * 100), '--metric', `val_loss=${loss(i)}`);
    ids.push(r.id);
  }
});

describe('retention: --keep-last 3 --keep-best 2 --metric val_loss', () => {
  const keep = new Set([...BEST, ...LAST]);

  it('du before pruning: logical bytes are the sum of the committed file sizes, disk bytes what the filesystem says', async () => {
    const du = await ckptJson(dir, 'du');
    expect(du.commits).toBe(COMMITS);
    expect(du.logical).toBe(COMMITS * fileSize);
    expect(du.disk.total).toBe(filesBytes(path.join(dir, '.ckpt')));
    expect(du.disk.packs).toBe(filesBytes(path.join(dir, '.ckpt', 'objects', 'packs')));
    expect(du.dedupRatio).toBeGreaterThan(1.5); // embed and slow are shared
    // the drifting tensor really is delta-coded, so pruned commits hold bases of kept ones
    const recs = (await indexFiles(path.join(dir, '.ckpt'))).flatMap((f) => f.records);
    expect(recs.filter((r) => r.base !== undefined).length).toBeGreaterThan(10);
    console.log(`du before prune: ${du.logical} logical, ${du.unique} unique, ${du.chunks} in packs, ${du.disk.total} on disk; dedup ${du.dedupRatio.toFixed(2)}x, compression ${du.compressionRatio.toFixed(2)}x`);
  });

  it('a dry run changes nothing and names the same commits', async () => {
    const before = await fs.readdir(path.join(dir, '.ckpt', 'objects', 'packs'));
    const r = await ckptJson(dir, 'prune', '--keep-last', '3', '--keep-best', '2', '--metric', 'val_loss', '--dry-run');
    expect(new Set(r.kept.map((d: { id: string }) => d.id))).toEqual(new Set([...keep].map((i) => ids[i])));
    expect(r.gc.bytes.freed).toBeGreaterThan(0);
    expect(await fs.readdir(path.join(dir, '.ckpt', 'objects', 'packs'))).toEqual(before);
    await expect(fs.readdir(path.join(dir, '.ckpt', 'pruned'))).rejects.toThrow();
  });

  it('prunes exactly the others; the kept ones check out byte-exact, the rest say pruned and when', async () => {
    const before = filesBytes(path.join(dir, '.ckpt', 'objects'));
    const r = await ckptJson(dir, 'prune', '--keep-last', '3', '--keep-best', '2', '--metric', 'val_loss');
    expect(r.pruned.length).toBe(COMMITS - keep.size);
    const out = await tempDir();
    for (let i = 0; i < COMMITS; i++) {
      const dest = path.join(out, `${i}.safetensors`);
      const c = await ckpt(dir, 'checkout', ids[i], '-o', dest);
      if (keep.has(i)) {
        expect(c.code, c.stderr).toBe(0);
        expect(sha(await fs.readFile(dest))).toBe(hashes[i]);
      } else {
        expect(c.code).toBe(4);
        expect(c.stderr).toMatch(new RegExp(`commit ${ids[i].slice(0, 12)} was pruned at \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z`));
      }
    }
    // history is intact and marks the pruned commits
    const log = await ckptJson(dir, 'log');
    expect(log.length).toBe(COMMITS);
    expect(log.filter((e: { pruned?: unknown }) => e.pruned).length).toBe(COMMITS - keep.size);
    expect(await ckptOk(dir, 'log')).toMatch(/step 0 \[pruned\]/);
    expect((await ckptJson(dir, 'checkout', 'best:val_loss', '-o', path.join(out, 'best.safetensors'))).commit).toBe(ids[6]);
    const after = filesBytes(path.join(dir, '.ckpt', 'objects'));
    console.log(`prune: objects/ ${before} -> ${after} bytes`);
    expect(after).toBeLessThan(before * 0.6);
  });

  it('after gc, the packs hold exactly the chunks the kept commits need, each once, and nothing else', async () => {
    const g = await ckptJson(dir, 'gc');
    expect(g.packs.deleted + g.packs.repacked).toBe(0); // prune already swept
    const repo = await Repository.open(dir);
    const need = new Set<ObjectId>();
    for (const i of keep) {
      const tree = await repo.readTree((await repo.readCommit(ids[i])).tree);
      for (const e of Object.values(tree.files)) for (const s of (await repo.readManifest(e.manifest)).segments) for (const [c] of s.chunks) need.add(c);
    }
    const files = await indexFiles(repo.store.dir);
    const stored = new Map(files.flatMap((f) => f.records.map((r) => [r.id, r] as const)));
    for (const id of [...need]) for (let r = stored.get(id); r?.base; r = stored.get(r.base)) need.add(r.base);
    const all = files.flatMap((f) => f.records.map((r) => r.id));
    expect(all.length).toBe(new Set(all).size);
    expect(new Set(all)).toEqual(need);
    let expected = 0;
    for (const f of files) {
      const size = PACK_PREAMBLE + f.records.reduce((n, r) => n + r.stored, 0) + packTrailer(f.records).length;
      expect(f.packSize).toBe(size);
      expected += size;
    }
    const onDisk = filesBytes(path.join(repo.store.dir, 'objects', 'packs'));
    expect(onDisk).toBe(expected);
    const du = await ckptJson(dir, 'du');
    expect(du.disk.packs).toBe(onDisk);
    expect(du.disk.total).toBe(filesBytes(repo.store.dir));
    expect(du.commits).toBe(keep.size);
    expect(du.logical).toBe(keep.size * fileSize);
    expect(du.prunedLogical).toBe((COMMITS - keep.size) * fileSize);
    console.log(`after gc: packs ${onDisk} bytes = ${need.size} needed chunks + pack framing; .ckpt ${du.disk.total} bytes (find agrees)`);
    const fsck = await ckptJson(dir, 'fsck', '--read-data');
    expect(fsck.ok).toBe(true);
  });
});

describe('du per branch', () => {
  it('counts each branch over its own history and agrees with the committed sizes', async () => {
    const d = await newRepo('--chunk-size', '65536');
    const sizes: number[] = [];
    const put = async (i: number, ...args: string[]) => {
      const b = model(i);
      sizes.push(b.length);
      await fs.writeFile(path.join(d, 'model.safetensors'), b);
      await ckptOk(d, 'commit', 'model.safetensors', '-m', `c${i}`, ...args);
    };
    await put(0);
    await put(1);
    await put(2, '--branch', 'exp');
    await put(3, '--branch', 'exp');
    const du = await ckptJson(d, 'du');
    const byName = Object.fromEntries(du.branches.map((b: { name: string }) => [b.name, b]));
    expect(du.logical).toBe(sizes.reduce((a, b) => a + b, 0));
    expect(byName.main.commits).toBe(2);
    expect(byName.main.logical).toBe(sizes[0] + sizes[1]);
    expect(byName.exp.commits).toBe(4);
    expect(byName.exp.logical).toBe(du.logical);
    expect(byName.exp.unique).toBeGreaterThan(byName.main.unique);
    expect(du.disk.total).toBe(filesBytes(path.join(d, '.ckpt')));
    const text = await ckptOk(d, 'du');
    expect(text).toMatch(/^main\s+2\s/m);
    expect(text).toMatch(/^exp\s+4\s/m);
  });
});
