/**
 * A delta base decoded only to rebuild another chunk is not hashed on its own (the chunk built on
 * it is), so a wrong base must still surface: as a corrupt chunk when something is built on it,
 * and as a corrupt base when the base itself is asked for, even after it was cached unhashed.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { objectId } from '../../src/core/objectId.js';
import { Repository } from '../../src/repo/repository.js';
import { CODEC_NONE, CODEC_ZIGZAG, encodeAs } from '../../src/store/chunkCodec.js';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

function weights(n: number, seed: number): Uint8Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.sin(i * 0.37 + seed) * 0.05;
  return new Uint8Array(w.buffer);
}

/** A store holding `base` under the id of `claimed` (stored plain), and `top` coded against it. */
async function storeWithBase(claimed: Uint8Array, base: Uint8Array, top: Uint8Array) {
  const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-bases-')));
  scratch.push(dir);
  const repo = await Repository.init(dir);
  const baseId = objectId('chunk', claimed);
  const topId = objectId('chunk', top);
  const delta = await encodeAs(top, CODEC_ZIGZAG, { planes: 4, base: claimed });
  const w = repo.store.newPackWriter();
  await w.add({ id: baseId, raw: base.length, codec: CODEC_NONE, planes: 1 }, base);
  await w.add({ id: topId, raw: top.length, codec: delta.codec, planes: delta.planes, base: baseId }, delta.data);
  const fin = await w.finish();
  await repo.store.registerPack(fin!);
  await repo.store.reloadIndex();
  return { repo, baseId, topId };
}

describe('delta bases read through the chunk reader', () => {
  it('rebuild the chunk exactly when the base is sound', async () => {
    const base = weights(65536, 1);
    const top = weights(65536, 1.0001);
    const { repo, baseId, topId } = await storeWithBase(base, base, top);
    const reader = await repo.store.reader();
    expect(Buffer.compare(await reader.read(topId), top)).toBe(0);
    expect(Buffer.compare(await reader.readCached(baseId), base)).toBe(0);
    await reader.close();
    const again = await repo.store.reader();
    const got: Uint8Array[] = [];
    for await (const c of again.stream([topId, baseId, topId])) got.push(c);
    await again.close();
    expect(Buffer.compare(Buffer.concat(got), Buffer.concat([top, base, top]))).toBe(0);
  });

  it('report the chunk built on a wrong base as corrupt, and the base too when it is asked for after being cached', async () => {
    const claimed = weights(65536, 2);
    const wrong = claimed.slice();
    wrong[1000] ^= 0x10;
    const top = weights(65536, 2.0001);
    const { repo, baseId, topId } = await storeWithBase(claimed, wrong, top);
    const reader = await repo.store.reader();
    await expect(reader.read(topId)).rejects.toMatchObject({ code: 'E_CORRUPT', data: { id: topId } });
    // the base is now in the reader's cache, decoded but not hashed: asking for it hashes it
    await expect(reader.readCached(baseId)).rejects.toMatchObject({ code: 'E_CORRUPT', data: { id: baseId } });
    await expect(reader.read(baseId)).rejects.toMatchObject({ code: 'E_CORRUPT' });
    await reader.close();
    const fresh = await repo.store.reader();
    await expect(fresh.stream([topId]).next()).rejects.toMatchObject({ code: 'E_CORRUPT', data: { id: topId } });
    await fresh.close();
  });
});
