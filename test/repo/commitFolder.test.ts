/**
 * A folder of shards is committed with files ingested at once (they share one pack and the chunks
 * already seen): every shard checks out byte-exact, a tensor repeated across shards is stored
 * once, the next commit codes changed shards against their own parents, and the store verifies.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { Repository } from '../../src/repo/repository.js';
import { CODEC_ZIGZAG } from '../../src/store/chunkCodec.js';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

function tensor(n: number, seed: number, step: number): Uint8Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.sin(i * 0.37 + seed) * 0.05 + step * 1e-5 * Math.cos(i);
  return new Uint8Array(w.buffer);
}

function shard(k: number, step: number): Uint8Array {
  return writeSafetensors([
    { name: `layers.${k}.weight`, dtype: 'F32', shape: [256, 1024], data: tensor(256 * 1024, k, step) },
    // the same bytes in every shard: stored once however the files interleave
    { name: `layers.${k}.norm`, dtype: 'F32', shape: [1024], data: tensor(1024, 99, 0) },
  ]);
}

describe('committing a folder of shards', () => {
  it('stores every shard byte-exact, once per distinct chunk, with deltas against each shard own parent', async () => {
    const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-folder-')));
    scratch.push(dir);
    const repo = await Repository.init(dir, { chunkSize: 65536 });
    const model = path.join(dir, 'model');
    await fs.mkdir(model);
    const write = async (step: number) => {
      const files: Record<string, Uint8Array> = { 'config.json': new TextEncoder().encode(`{"step": ${step}}\n`) };
      for (let k = 0; k < 4; k++) files[`model-0000${k + 1}-of-00004.safetensors`] = shard(k, step);
      for (const [name, bytes] of Object.entries(files)) await fs.writeFile(path.join(model, name), bytes);
      return files;
    };
    const v0 = await write(0);
    const first = await commitFiles(repo, [model], { message: 'step 0' });
    expect(first.files.map((f) => path.basename(f.path))).toEqual(Object.keys(v0).sort());
    // 4 weights of 16 chunks each, the shared norm once (one chunk), config: 66 new chunks at most
    expect(first.stats.newChunks).toBeLessThanOrEqual(4 * 16 + 1 + 4 + 1 + 4);
    const v1 = await write(1);
    await commitFiles(repo, [model], { message: 'step 1' });

    const index = await repo.store.reloadIndex();
    const deltas = [...index.entries()].filter((r) => r.codec === CODEC_ZIGZAG);
    expect(deltas.length).toBeGreaterThanOrEqual(4 * 16 - 4);
    for (const [rev, files] of [['HEAD~1', v0], ['HEAD', v1]] as const) {
      const out = path.join(dir, `out-${rev.replace('~', '-')}`);
      await checkout(repo, rev, { output: out });
      for (const [name, bytes] of Object.entries(files)) {
        expect(Buffer.compare(await fs.readFile(path.join(out, 'model', name)), bytes), `${rev} ${name}`).toBe(0);
      }
    }
    expect((await fsck(await Repository.open(dir), { readData: true })).faults).toEqual([]);
  });
});
