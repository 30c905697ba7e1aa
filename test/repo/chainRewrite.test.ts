/**
 * gc lays delta chains out newest-first (the version a run resumes from is stored whole, older
 * ones as deltas against newer ones), every version still restores bit for bit, and retention
 * frees the bytes of dropped versions even when kept versions were coded against them.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/core/seededRandom.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { gc } from '../../src/repo/gc.js';
import { prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { CODEC_DELTA, CODEC_ZIGZAG } from '../../src/store/chunkCodec.js';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

async function tmp(): Promise<string> {
  const d = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-rechain-')));
  scratch.push(d);
  return d;
}

/** Trained-like weights: small random values, each step a small random update to every one. */
function versions(count: number, n: number): Uint8Array[] {
  const rand = mulberry32(7);
  const w = Float32Array.from({ length: n }, () => (rand() - 0.5) * 0.1);
  const out: Uint8Array[] = [];
  for (let v = 0; v < count; v++) {
    if (v > 0) for (let i = 0; i < n; i++) w[i] += (rand() - 0.5) * 1e-5;
    out.push(
      writeSafetensors([
        { name: 'a.weight', dtype: 'F32', shape: [n / 64, 64], data: new Uint8Array(w.buffer.slice(0)) },
        { name: 'b.weight', dtype: 'F32', shape: [n / 128, 64], data: new Uint8Array(w.buffer.slice(0, n * 2)) },
      ]),
    );
  }
  return out;
}

async function commitAll(dir: string, files: Uint8Array[]): Promise<Repository> {
  const repo = await Repository.init(dir, { chunkSize: 16384 });
  const file = path.join(dir, 'model.safetensors');
  for (let v = 0; v < files.length; v++) {
    await fs.writeFile(file, files[v]);
    await commitFiles(repo, [file], { message: `v${v}`, meta: { step: v } });
  }
  return repo;
}

async function storeBytes(repo: Repository): Promise<number> {
  let n = 0;
  for (const dir of [repo.store.packsDir, path.join(repo.store.dir, 'objects', 'index')]) {
    for (const f of await fs.readdir(dir)) n += (await fs.stat(path.join(dir, f))).size;
  }
  return n;
}

/** Chunks of a commit, each with the number of delta links under it. */
async function depthsOf(repo: Repository, rev: string): Promise<number[]> {
  const index = await repo.store.reloadIndex();
  const { resolveRevision } = await import('../../src/repo/resolveRevision.js');
  const c = await repo.readCommit(await resolveRevision(repo, rev));
  const t = await repo.readTree(c.tree);
  const out: number[] = [];
  for (const e of Object.values(t.files)) {
    for (const s of (await repo.readManifest(e.manifest)).segments) {
      for (const [id] of s.chunks) {
        let d = 0;
        for (let r = index.get(id)!; r.base; r = index.get(r.base)!) d++;
        out.push(d);
      }
    }
  }
  return out;
}

describe('gc rewrites delta chains newest-first', () => {
  it('stores the head whole, keeps every version byte-exact, and keeps chains bounded', async () => {
    const dir = await tmp();
    const files = versions(12, 16384);
    const repo = await commitAll(dir, files);
    expect(Math.max(...(await depthsOf(repo, 'HEAD')))).toBeGreaterThan(0);
    const before = await storeBytes(repo);

    await gc(repo);
    const after = await Repository.open(dir);
    // the twelve small packs are one now, and a second gc finds nothing to re-code or merge
    expect(await fs.readdir(after.store.packsDir)).toHaveLength(1);
    expect((await gc(after)).packs.repacked).toBe(0);
    expect(await depthsOf(after, 'HEAD')).toEqual((await depthsOf(after, 'HEAD')).map(() => 0));
    const index = await after.store.reloadIndex();
    expect([...index.entries()].some((r) => r.codec === CODEC_DELTA || r.codec === CODEC_ZIGZAG)).toBe(true);
    for (const rev of ['HEAD~1', 'HEAD~11']) {
      expect(Math.max(...(await depthsOf(after, rev)))).toBeLessThanOrEqual(after.store.config.compression.maxDeltaChain);
    }
    // the same number of whole versions, so about the same bytes
    expect(await storeBytes(after)).toBeLessThan(before * 1.1);
    expect((await fsck(after, { readData: true })).faults).toEqual([]);
    for (let v = 0; v < files.length; v++) {
      const out = path.join(dir, `out${v}.safetensors`);
      await checkout(after, `HEAD~${files.length - 1 - v}`, { output: out });
      expect(Buffer.compare(await fs.readFile(out), files[v]), `version ${v}`).toBe(0);
    }

    // a second gc after more commits keeps the new head whole and everything readable
    const file = path.join(dir, 'model.safetensors');
    const more = versions(14, 16384).slice(12);
    for (const [i, f] of more.entries()) {
      await fs.writeFile(file, f);
      await commitFiles(after, [file], { message: `v${12 + i}`, meta: { step: 12 + i } });
    }
    await gc(after);
    const again = await Repository.open(dir);
    expect(Math.max(...(await depthsOf(again, 'HEAD')))).toBe(0);
    for (const [rev, want] of [['HEAD', more[1]], ['HEAD~1', more[0]], ['HEAD~2', files[11]], ['HEAD~13', files[0]]] as const) {
      const out = path.join(dir, 'again.safetensors');
      await checkout(again, rev, { output: out });
      expect(Buffer.compare(await fs.readFile(out), want), rev).toBe(0);
    }
  });

  it('prune --keep-last then gc frees what no kept commit needs, even bases of kept versions', async () => {
    const files = versions(10, 16384);
    const dir = await tmp();
    const repo = await commitAll(dir, files);
    const before = await storeBytes(repo);
    const res = await prune(repo, { keepLast: 3 });
    expect(res.gc?.bytes.freed).toBeGreaterThan(0);
    const kept = await Repository.open(dir);
    expect((await fsck(kept, { readData: true })).faults).toEqual([]);
    for (const v of [7, 8, 9]) {
      const out = path.join(dir, `kept${v}.safetensors`);
      await checkout(kept, `HEAD~${9 - v}`, { output: out });
      expect(Buffer.compare(await fs.readFile(out), files[v]), `version ${v}`).toBe(0);
    }
    // a store that only ever held those three versions
    const only = await commitAll(await tmp(), files.slice(7));
    const pruned = await storeBytes(kept);
    expect(pruned).toBeLessThan(before * 0.75);
    const onlyBytes = await storeBytes(only);
    expect(pruned).toBeLessThanOrEqual(onlyBytes * 1.1);
  });

  it('a gc interrupted before the old index files are gone leaves every kept version readable', async () => {
    const files = versions(10, 16384);
    const dir = await tmp();
    const repo = await Repository.init(dir, { chunkSize: 16384 });
    const file = path.join(dir, 'model.safetensors');
    const indexDir = repo.store.indexDir;
    const saved = path.join(await tmp(), 'v7');
    let v7: { idx: string; pack: string } | undefined;
    for (let v = 0; v < files.length; v++) {
      const before = new Set(await fs.readdir(indexDir).catch(() => []));
      await fs.writeFile(file, files[v]);
      await commitFiles(repo, [file], { message: `v${v}`, meta: { step: v } });
      if (v === 7) {
        // the pack that codes version 7 against version 6, kept as a crash would leave it
        const idx = (await fs.readdir(indexDir)).find((n) => !before.has(n))!;
        const { decodeIndexFile } = await import('../../src/store/chunkIndex.js');
        const { pack } = decodeIndexFile(await fs.readFile(path.join(indexDir, idx)), idx);
        await fs.mkdir(saved, { recursive: true });
        await fs.copyFile(path.join(indexDir, idx), path.join(saved, idx));
        await fs.copyFile(path.join(repo.store.packsDir, `${pack}.pack`), path.join(saved, `${pack}.pack`));
        v7 = { idx, pack: `${pack}.pack` };
      }
    }
    await prune(repo, { keepLast: 3 });
    // version 7 is now coded against version 8 and version 6 is gone; put the old copy back
    await fs.copyFile(path.join(saved, v7!.idx), path.join(indexDir, v7!.idx));
    await fs.copyFile(path.join(saved, v7!.pack), path.join(repo.store.packsDir, v7!.pack));
    const crashed = await Repository.open(dir);
    for (const v of [7, 8, 9]) {
      const out = path.join(dir, `after-crash${v}.safetensors`);
      await checkout(crashed, `HEAD~${9 - v}`, { output: out });
      expect(Buffer.compare(await fs.readFile(out), files[v]), `version ${v}`).toBe(0);
    }
    // the next gc runs and removes the stale copy
    await gc(crashed);
    expect(await fs.readdir(indexDir)).not.toContain(v7!.idx);
    expect((await fsck(await Repository.open(dir), { readData: true })).faults).toEqual([]);
  });
});
