/**
 * Acceptance 2: the store grows by what changed, not by the size of each checkpoint. Measured on
 * the packs folder itself (bytes on disk), not only on what the commit reports.
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors, type SafetensorsTensor } from '../../src/formats/safetensors.js';
import { ckptJson, cleanupTempDirs, dirBytes, newRepo, randomF32, snapshot } from './helpers.js';

afterAll(cleanupTempDirs);

const CHUNK = 65536;
const ELEMENTS = 76_800; // 300 KiB of F32: four full chunks and a partial one per tensor
const TENSOR_BYTES = ELEMENTS * 4;
const METADATA_SLACK = 64 * 1024;

function model(seeds: number[]): SafetensorsTensor[] {
  return seeds.map((seed, i) => ({ name: `layers.${i}.weight`, dtype: 'F32', shape: [ELEMENTS / 256, 256], data: randomF32(seed, ELEMENTS) }));
}

describe('dedup', () => {
  it('a commit changing 3 of 10 tensors stores about those 3 tensors; the same file again stores nothing', async () => {
    const dir = await newRepo('--chunk-size', String(CHUNK));
    const packs = path.join(dir, '.ckpt', 'objects', 'packs');
    const file = path.join(dir, 'model.safetensors');
    const seeds = Array.from({ length: 10 }, (_, i) => 1000 + i);

    const v1 = writeSafetensors(model(seeds));
    await fs.writeFile(file, v1);
    const c1 = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'v1');
    expect(c1.stats.newRawBytes).toBeGreaterThanOrEqual(10 * TENSOR_BYTES);
    const afterV1 = await dirBytes(packs);

    const changed = [2, 5, 9];
    for (const i of changed) seeds[i] += 5000;
    const v2 = writeSafetensors(model(seeds));
    expect(v2.length).toBe(v1.length);
    await fs.writeFile(file, v2);
    const c2 = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'v2', '--no-compress');
    const growth = (await dirBytes(packs)) - afterV1;
    const bound = changed.length * (TENSOR_BYTES + CHUNK) + METADATA_SLACK;
    console.log(`dedup: 3 of 10 tensors changed (${changed.length * TENSOR_BYTES} bytes): packs grew ${growth} bytes (bound ${bound}); ` +
      `commit reports ${c2.stats.newChunks}/${c2.stats.chunks} chunks, ${c2.stats.newRawBytes} new raw bytes`);
    expect(growth).toBeGreaterThanOrEqual(changed.length * TENSOR_BYTES); // stored plain: nothing smaller is possible
    expect(growth).toBeLessThanOrEqual(bound);
    expect(c2.stats.newRawBytes).toBeGreaterThanOrEqual(changed.length * TENSOR_BYTES);
    expect(c2.stats.newRawBytes).toBeLessThanOrEqual(changed.length * (TENSOR_BYTES + CHUNK));
    expect(c2.stats.newChunks).toBe(changed.length * Math.ceil(TENSOR_BYTES / CHUNK));

    // the identical file again: no pack written, nothing new reported
    const before = await snapshot(packs);
    const c3 = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'v2 again', '--no-compress');
    expect(await snapshot(packs)).toEqual(before);
    expect(c3.stats.newChunks).toBe(0);
    expect(c3.stats.newRawBytes).toBe(0);
    expect(c3.tree).toBe(c2.tree);

    // one element changed costs the one chunk holding it
    const v4 = Buffer.from(v2);
    const at = v4.length - 5 * TENSOR_BYTES + 100_000; // inside tensor 5, in its second chunk
    v4.writeFloatLE(v4.readFloatLE(at) + 1, at);
    await fs.writeFile(file, v4);
    const c4 = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'v4', '--no-compress');
    expect(c4.stats.newChunks).toBe(1);
    expect(c4.stats.newRawBytes).toBe(CHUNK);

    for (const [c, bytes] of [
      [c1, v1],
      [c2, v2],
      [c3, v2],
      [c4, v4],
    ] as const) {
      await ckptJson(dir, 'checkout', c.id, '-o', 'out.safetensors');
      expect(readFileSync(path.join(dir, 'out.safetensors')).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  it('training-like small updates are stored as deltas against the parent and read back exactly', async () => {
    const dir = await newRepo('--chunk-size', String(CHUNK));
    const file = path.join(dir, 'model.safetensors');
    const weights = model(Array.from({ length: 4 }, (_, i) => 7000 + i));
    const versions: { id: string; bytes: Uint8Array }[] = [];
    let stored = 0;
    let raw = 0;
    for (let step = 0; step < 4; step++) {
      if (step > 0) {
        // an optimizer step: every weight moves by a tiny relative amount
        for (const t of weights) {
          const f = new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
          const noise = new Float32Array(randomF32(step * 31 + f.length, f.length).buffer);
          for (let i = 0; i < f.length; i++) f[i] += f[i] * noise[i] * 0.02;
        }
      }
      const bytes = writeSafetensors(weights);
      await fs.writeFile(file, bytes);
      const c = await ckptJson(dir, 'commit', 'model.safetensors', '-m', `step ${step}`);
      if (step > 0) {
        stored += c.stats.storedBytes;
        raw += c.stats.newRawBytes;
      }
      versions.push({ id: c.id, bytes });
    }
    console.log(`dedup: 3 small updates of 4 tensors stored ${stored} bytes for ${raw} raw`);
    expect(stored).toBeLessThan(raw);
    for (const v of versions) {
      await ckptJson(dir, 'checkout', v.id, '-o', 'out.safetensors');
      expect(readFileSync(path.join(dir, 'out.safetensors')).equals(Buffer.from(v.bytes))).toBe(true);
    }
  });
});
