/**
 * The stat cache lets an unchanged file be re-committed without reading it, and must never
 * let a changed file, a freshly written file or a file whose chunks were collected pass for it.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { Repository } from '../../src/repo/repository.js';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

async function setup(): Promise<{ dir: string; repo: Repository; file: string; clock: { now: number } }> {
  const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-statcache-')));
  scratch.push(dir);
  // a clock well after the file's mtime, so the racy-write rule does not apply unless a test wants it
  const clock = { now: Date.now() + 60_000 };
  const repo = await Repository.init(dir, { chunkSize: 4096, clock: () => clock.now });
  const file = path.join(dir, 'model.safetensors');
  await fs.writeFile(file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [4096], data: new Uint8Array(16384).map((_, i) => i * 7) }]));
  return { dir, repo, file, clock };
}

describe('stat cache', () => {
  it('re-commits an unchanged file without reading it', async () => {
    const { repo, file } = await setup();
    const first = await commitFiles(repo, [file], { message: 'a' });
    expect(first.stats.chunks).toBeGreaterThan(0);
    const again = await commitFiles(repo, [file], { message: 'b' });
    expect(again.stats.chunks).toBe(0);
    expect(again.files[0].manifest).toBe(first.files[0].manifest);
  });

  it('reads a file whose bytes changed even when size and mtime were put back', async () => {
    const { repo, file } = await setup();
    const first = await commitFiles(repo, [file], { message: 'a' });
    const st = await fs.stat(file);
    const bytes = await fs.readFile(file);
    bytes[bytes.length - 1] ^= 0xff;
    await fs.writeFile(file, bytes);
    await fs.utimes(file, st.atime, st.mtime);
    const second = await commitFiles(repo, [file], { message: 'b' });
    expect(second.stats.chunks).toBeGreaterThan(0);
    expect(second.files[0].manifest).not.toBe(first.files[0].manifest);
    const out = path.join(path.dirname(file), 'out.safetensors');
    await checkout(repo, 'HEAD', { output: out });
    expect(Buffer.compare(await fs.readFile(out), bytes)).toBe(0);
  });

  it('does not trust a file written within the racy window of its recording', async () => {
    const { repo, file, clock } = await setup();
    clock.now = Date.now();
    await commitFiles(repo, [file], { message: 'a' });
    const again = await commitFiles(repo, [file], { message: 'b' });
    expect(again.stats.chunks).toBeGreaterThan(0);
  });

  it('reads the file again when its chunks are no longer stored', async () => {
    const { dir, repo, file } = await setup();
    await commitFiles(repo, [file], { message: 'a' });
    for (const sub of ['packs', 'index']) await fs.rm(path.join(dir, '.ckpt', 'objects', sub), { recursive: true, force: true });
    const fresh = await Repository.open(dir, { clock: () => Date.now() + 60_000 });
    const again = await commitFiles(fresh, [file], { message: 'b' });
    expect(again.stats.newChunks).toBeGreaterThan(0);
    const out = path.join(dir, 'out.safetensors');
    await checkout(fresh, 'HEAD', { output: out });
    expect(Buffer.compare(await fs.readFile(out), await fs.readFile(file))).toBe(0);
  });
});
