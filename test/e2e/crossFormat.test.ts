/**
 * Dedup across formats: the same tensors saved by PyTorch in a .pt and written into a
 * .safetensors are stored once. Chunks are cut at each tensor's own start, so the framing around
 * a tensor (a zip record aligned to 64 bytes, or a JSON header) cannot shift its chunks; only the
 * framing of the second file is new. The safetensors file is written by hand in Python, not by
 * ckpt's writer, so the test does not share code with what it checks.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ckptJson, ckptOk, cleanupTempDirs, newRepo } from './helpers.js';

afterAll(cleanupTempDirs);

const PYTHON = '/usr/bin/python3';
const CHUNK = 65536;

function torchMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} cannot be run (${r.error.message})`;
  return r.status === 0 ? undefined : `${PYTHON} cannot import torch: ${r.stderr.trim().split('\n').pop()}`;
}
const SKIP = torchMissing();
if (SKIP) console.warn(`crossFormat skipped: ${SKIP}`);

/** Writes model.pt and model.safetensors holding the same tensors; prints the safetensors header length. */
const MAKE = String.raw`
import json, struct, sys, torch
torch.manual_seed(3)
state = {
    'w': torch.randn(400, 500) * 0.02,                       # 800000 bytes: 13 chunks of 64 KiB
    'b': (torch.randn(300, 256) * 0.02).to(torch.bfloat16),  # 153600 bytes: 3 chunks
}
torch.save(state, 'model.pt')
names = {torch.float32: 'F32', torch.bfloat16: 'BF16'}
header, raw, off = {}, [], 0
for k, t in state.items():
    b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    header[k] = {'dtype': names[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
    raw.append(b)
    off += len(b)
h = json.dumps(header, separators=(',', ':')).encode()
h += b' ' * (-len(h) % 8)
with open('model.safetensors', 'wb') as f:
    f.write(struct.pack('<Q', len(h)) + h + b''.join(raw))
print(8 + len(h))
`;

interface Shown {
  files: { path: string; format: string; tensors: { name: string; dtype: string; shape: number[]; hash: string; chunks: number }[] }[];
}

describe.skipIf(SKIP !== undefined)('one tensor in two formats', () => {
  for (const order of [
    ['model.pt', 'model.safetensors'],
    ['model.safetensors', 'model.pt'],
  ]) {
    it(`is stored once: ${order[0]} then ${order[1]} adds only the second file's framing`, async () => {
      const dir = await newRepo('--chunk-size', String(CHUNK));
      const make = spawnSync(PYTHON, ['-c', MAKE], { cwd: dir, encoding: 'utf8' });
      expect(make.status, make.stderr).toBe(0);
      const stHeader = Number(make.stdout.trim());
      const tensorBytes = 800_000 + 153_600;
      const size = (f: string) => statSync(path.join(dir, f)).size;
      expect(size('model.safetensors')).toBe(stHeader + tensorBytes);

      const first = await ckptJson(dir, 'commit', order[0], '-m', order[0]);
      const second = await ckptJson(dir, 'commit', order[1], '-m', order[1]);
      const tensorChunks = Math.ceil(800_000 / CHUNK) + Math.ceil(153_600 / CHUNK);
      expect(first.stats.newRawBytes).toBeGreaterThanOrEqual(tensorBytes);
      expect(first.stats.newChunks).toBeGreaterThanOrEqual(tensorChunks);
      // Everything the second commit stores is its framing: the file minus the tensor bytes.
      const framing = size(order[1]) - tensorBytes;
      expect(second.stats.newRawBytes).toBeLessThanOrEqual(framing);
      expect(second.stats.chunks - second.stats.newChunks).toBeGreaterThanOrEqual(tensorChunks);

      const shown = await Promise.all([first.id, second.id].map((id: string) => ckptJson<Shown>(dir, 'show', id)));
      const [a, b] = shown.map((s) => Object.fromEntries(s.files[0].tensors.map((t) => [t.name, t])));
      expect(shown.map((s) => s.files[0].format).sort()).toEqual(['pytorch', 'safetensors']);
      for (const name of ['w', 'b']) {
        expect(b[name].hash).toBe(a[name].hash);
        expect(b[name].chunks).toBe(a[name].chunks);
        expect([b[name].dtype, b[name].shape]).toEqual([a[name].dtype, a[name].shape]);
      }
      expect(a.w.chunks).toBe(13);

      for (const [i, id] of [first.id, second.id].entries()) {
        const out = path.join(dir, `out.${order[i]}`);
        await ckptOk(dir, 'checkout', id, '-o', out);
        expect(readFileSync(out).equals(readFileSync(path.join(dir, order[i])))).toBe(true);
      }
    });
  }
});
