/**
 * The fixed cut inside a tensor (src/chunking/fixedChunks.ts), and the property it exists for:
 * commit, diff of a file not committed and merge cut a tensor at the same places, so they agree
 * on chunk ids (a diff reads only what differs, a merged tensor dedups against committed ones).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fixedChunks } from '../../src/chunking/fixedChunks.js';
import { objectId } from '../../src/core/objectId.js';
import type { ManifestTensorSegment } from '../../src/core/objects.js';
import { writeSafetensors, type SafetensorsTensor } from '../../src/formats/safetensors.js';
import { ManifestBuilder } from '../../src/merge/manifestBuilder.js';
import { commitFiles } from '../../src/repo/commit.js';
import { diff } from '../../src/repo/diff.js';
import { Ingestor, readLayout } from '../../src/repo/ingestFile.js';
import { Repository } from '../../src/repo/repository.js';
import { resolveRevision } from '../../src/repo/resolveRevision.js';
import { cleanupTempDirs, randomF32, tempDir } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

const spans = (start: number, length: number, chunkSize: number) => [...fixedChunks(start, length, chunkSize)];

describe('fixed chunks', () => {
  it('cut every chunk size bytes from the tensor start, the last chunk shorter', () => {
    expect(spans(100, 10_000, 4096)).toEqual([
      { index: 0, offset: 100, length: 4096 },
      { index: 1, offset: 4196, length: 4096 },
      { index: 2, offset: 8292, length: 1808 },
    ]);
    expect(spans(0, 8192, 4096)).toEqual([
      { index: 0, offset: 0, length: 4096 },
      { index: 1, offset: 4096, length: 4096 },
    ]);
    expect(spans(7, 1, 4096)).toEqual([{ index: 0, offset: 7, length: 1 }]);
  });

  it('an empty tensor has no chunks; a chunk size that would never advance is refused', () => {
    expect(spans(50, 0, 4096)).toEqual([]);
    for (const bad of [0, -4096, 1.5, Number.NaN]) expect(() => spans(0, 10, bad), String(bad)).toThrow(/chunk size/);
  });
});

describe('commit, diff and merge cut a tensor the same way', () => {
  const CHUNK = 4096;
  // lengths that are not a multiple of the chunk size, one that is, and one under a chunk
  const tensors: SafetensorsTensor[] = [
    { name: 'a', dtype: 'F32', shape: [1000, 3], data: randomF32(1, 3000) },
    { name: 'b', dtype: 'F32', shape: [2048], data: randomF32(2, 2048) },
    { name: 'c', dtype: 'F32', shape: [5], data: randomF32(3, 5) },
  ];

  async function committed() {
    const dir = await tempDir('ckpt-fixed-');
    const repo = await Repository.init(dir, { chunkSize: CHUNK });
    const file = path.join(dir, 'model.safetensors');
    const bytes = writeSafetensors(tensors);
    await fs.writeFile(file, bytes);
    await commitFiles(repo, [file], { message: 'one', compress: false });
    const commit = await repo.readCommit(await resolveRevision(repo, 'HEAD'));
    const entry = (await repo.readTree(commit.tree)).files['model.safetensors'];
    const manifest = await repo.readManifest(entry.manifest);
    const segs = new Map(manifest.segments.filter((s): s is ManifestTensorSegment => s.t === 'tensor').map((s) => [s.name, s]));
    return { dir, repo, file, bytes, segs };
  }

  it('commit stores each tensor as fixedChunks cuts it', async () => {
    const { file, bytes, segs } = await committed();
    const layout = await readLayout(file);
    for (const s of layout.segments) {
      if (s.kind !== 'tensor') continue;
      const want = spans(s.offset, s.length, CHUNK).map((c) => [objectId('chunk', bytes.subarray(c.offset, c.offset + c.length)), c.length]);
      expect(segs.get(s.name)?.chunks, s.name).toEqual(want);
    }
    expect(segs.get('a')?.chunks.map((c) => c[1])).toEqual([4096, 4096, 3808]);
  });

  it('diff cuts a file not committed as commit did: equal chunks match by id, only the changed one differs', async () => {
    const { dir, repo, segs } = await committed();
    const same = await diff(repo, 'HEAD', 'model.safetensors', { cwd: dir });
    expect(same.identical).toBe(true);
    expect(same.read.chunks).toBe(0);

    // one element in the second chunk of `a` changed, in a copy not committed
    const edited = tensors.map((t) => ({ ...t, data: t.data.slice() }));
    new DataView(edited[0].data.buffer).setFloat32(5000, 42, true);
    await fs.writeFile(path.join(dir, 'edited.safetensors'), writeSafetensors(edited));
    const r = await diff(repo, 'HEAD', 'edited.safetensors', { cwd: dir });
    expect(r.tensors.changed.map((t) => [t.name, t.chunks, t.changedChunks])).toEqual([['a', segs.get('a')!.chunks.length, [1]]]);
    expect(r.tensors.unchanged.map((t) => t.name).sort()).toEqual(['b', 'c']);
  });

  it('merge, given a tensor in blocks of any size, cuts it as commit did and stores nothing new', async () => {
    const { repo, segs } = await committed();
    const ingestor = new Ingestor(repo.store, { compress: false });
    const reader = await repo.store.reader();
    try {
      const sink = ingestor.sink(await repo.store.reloadIndex());
      const builder = new ManifestBuilder(sink, reader, CHUNK);
      for (const t of tensors) {
        const w = builder.tensor(t.name, t.dtype, t.shape, t.data.length);
        // blocks that straddle the cuts: a byte, an odd run, more than a chunk, the rest
        let at = 0;
        for (const n of [1, 999, 5000, Infinity]) {
          const end = Math.min(t.data.length, at + n);
          await w.write(t.data.slice(at, end));
          at = end;
        }
        await w.end();
      }
      await sink.drain();
      const built = builder.finish('safetensors');
      for (const s of built.segments) if (s.t === 'tensor') expect(s.chunks, s.name).toEqual(segs.get(s.name)?.chunks);
      expect(ingestor.stats.newChunks).toBe(0);
    } finally {
      await reader.close();
      await ingestor.abort();
    }
  });
});
