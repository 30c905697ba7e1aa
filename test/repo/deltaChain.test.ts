/**
 * Delta chains stay within their bound (so a checkout never walks far), every version reads back
 * exactly, and retention plus gc never leave a kept chunk without the base it is coded against.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';
import { getSetting, setSetting } from '../../src/repo/settings.js';
import { CODEC_DELTA, CODEC_ZIGZAG } from '../../src/store/chunkCodec.js';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

/** Trained-like weights: a smooth base plus small per-step updates, so deltas pay. */
function versions(count: number, n: number): Uint8Array[] {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = Math.sin(i * 0.37) * 0.05;
  const out: Uint8Array[] = [];
  for (let v = 0; v < count; v++) {
    for (let i = v % 3; i < n; i += 3) w[i] += 1e-5 * Math.cos(i + v);
    out.push(writeSafetensors([{ name: 'layer.weight', dtype: 'F32', shape: [n / 64, 64], data: new Uint8Array(w.buffer.slice(0)) }]));
  }
  return out;
}

async function chainDepths(repo: Repository): Promise<number[]> {
  const index = await repo.store.reloadIndex();
  const depths: number[] = [];
  for (const r of index.entries()) {
    let d = 0;
    for (let x = r; x.base; x = index.get(x.base)!) {
      expect(index.get(x.base), `base ${x.base} of ${x.id}`).toBeDefined();
      d++;
    }
    depths.push(d);
  }
  return depths;
}

describe('delta chains', () => {
  it('never exceed compression.maxDeltaChain, and every version checks out exactly', async () => {
    const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-chain-')));
    scratch.push(dir);
    const repo = await Repository.init(dir, { chunkSize: 16384 });
    await setSetting(repo, 'compression.maxDeltaChain', '3');
    expect(getSetting(repo, 'compression.maxDeltaChain')).toBe(3);
    const files = versions(10, 16384);
    const file = path.join(dir, 'model.safetensors');
    for (let v = 0; v < files.length; v++) {
      await fs.writeFile(file, files[v]);
      await commitFiles(repo, [file], { message: `v${v}`, meta: { step: v, metrics: { val_loss: 1 / (v + 1) } } });
    }
    const index = await repo.store.reloadIndex();
    const deltas = [...index.entries()].filter((r) => r.codec === CODEC_DELTA || r.codec === CODEC_ZIGZAG);
    expect(deltas.length).toBeGreaterThan(0);
    const depths = await chainDepths(repo);
    expect(Math.max(...depths)).toBe(3);
    for (let v = 0; v < files.length; v++) {
      const out = path.join(dir, `out${v}.safetensors`);
      await checkout(repo, `HEAD~${files.length - 1 - v}`, { output: out });
      expect(Buffer.compare(await fs.readFile(out), files[v]), `version ${v}`).toBe(0);
    }

    // keep the last 2 and the best 1 (the newest is also the best): the rest is freed, but the
    // bases the kept chunks are coded against must survive gc
    await prune(repo, { keepLast: 2 });
    const after = await Repository.open(dir);
    await chainDepths(after);
    const check = await fsck(after, { readData: true });
    expect(check.faults).toEqual([]);
    for (const v of [8, 9]) {
      const out = path.join(dir, `kept${v}.safetensors`);
      await checkout(after, `HEAD~${9 - v}`, { output: out });
      expect(Buffer.compare(await fs.readFile(out), files[v])).toBe(0);
    }
    await expect(checkout(after, 'HEAD~5', { output: path.join(dir, 'gone') })).rejects.toMatchObject({ code: 'E_PRUNED' });
  });

  it('config refuses bad values and read-only keys', async () => {
    const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-config-')));
    scratch.push(dir);
    const repo = await Repository.init(dir);
    await expect(setSetting(repo, 'compression.level', '99')).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(setSetting(repo, 'compression.mode', 'fast')).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(setSetting(repo, 'chunkSize', '4096')).rejects.toMatchObject({ code: 'E_USAGE' });
    await expect(setSetting(repo, 'nope', '1')).rejects.toMatchObject({ code: 'E_USAGE' });
    expect(await setSetting(repo, 'compression.level', '3')).toBe(3);
    expect(getSetting(await Repository.open(dir), 'compression.level')).toBe(3);
  });
});
