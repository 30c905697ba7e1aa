/**
 * Acceptance 4: fsck finds each kind of damage, names it in one clear line, and exits non-zero
 * (5, E_CORRUPT); a sound store passes with exit 0.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { ckpt, ckptJson, cleanupTempDirs, newRepo, randomF32, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

let template: string;
let headId: string;

beforeAll(async () => {
  template = await newRepo('--chunk-size', '65536');
  for (let i = 0; i < 2; i++) {
    await fs.writeFile(
      path.join(template, 'model.safetensors'),
      writeSafetensors([
        { name: 'w', dtype: 'F32', shape: [65536], data: randomF32(1, 65536) },
        { name: 'v', dtype: 'F32', shape: [65536], data: randomF32(50 + i, 65536) },
      ]),
    );
    headId = (await ckptJson(template, 'commit', 'model.safetensors', '-m', `c${i}`)).id;
  }
});

async function copy(): Promise<{ dir: string; store: string; packs: string[] }> {
  const dir = await tempDir();
  await fs.cp(template, dir, { recursive: true });
  const store = path.join(dir, '.ckpt');
  const packsDir = path.join(store, 'objects', 'packs');
  const packs = (await fs.readdir(packsDir)).map((n) => path.join(packsDir, n));
  return { dir, store, packs };
}

async function faulty(dir: string, readData: boolean): Promise<{ stdout: string; stderr: string; kinds: string[] }> {
  const args = readData ? ['fsck', '--read-data'] : ['fsck'];
  const r = await ckpt(dir, ...args);
  expect(r.code, r.stdout + r.stderr).toBe(5);
  expect(r.stderr).toMatch(/fsck found \d+ fault\(s\)/);
  const j = await ckpt(dir, ...args, '--json');
  expect(j.code).toBe(5);
  const kinds = (JSON.parse(j.stdout).error.faults as { kind: string }[]).map((f) => f.kind);
  return { stdout: r.stdout, stderr: r.stderr, kinds };
}

describe('fsck', () => {
  it('passes a sound store, with and without --read-data', async () => {
    const { dir } = await copy();
    for (const args of [['fsck'], ['fsck', '--read-data']]) {
      const r = await ckpt(dir, ...args);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^ok: /);
    }
  });

  it('a flipped byte in a pack: the pack no longer matches its name and the chunk fails its hash', async () => {
    const { dir, packs } = await copy();
    const b = await fs.readFile(packs[0]);
    b[100] ^= 0x01;
    await fs.writeFile(packs[0], b);
    const r = await faulty(dir, true);
    expect(r.kinds).toContain('pack-hash');
    expect(r.kinds).toContain('chunk-corrupt');
    expect(r.stdout).toMatch(new RegExp(`pack-hash: pack ${path.basename(packs[0]).slice(0, 12)}: its bytes do not match its name`));
    expect(r.stdout).toMatch(/chunk-corrupt: chunk [0-9a-f]{12} at offset \d+ of pack [0-9a-f]{12} is damaged/);
  });

  it('a truncated pack: its size disagrees with the index, structurally, without reading data', async () => {
    const { dir, packs } = await copy();
    const st = await fs.stat(packs[0]);
    await fs.truncate(packs[0], st.size - 1000);
    const r = await faulty(dir, false);
    expect(r.kinds).toContain('pack-size');
    expect(r.stdout).toMatch(new RegExp(`pack-size: pack [0-9a-f]{12} is ${st.size - 1000} bytes, its index says ${st.size} \\(truncated\\)`));
    expect(r.kinds).toContain('chunk-missing');
  });

  it('a missing pack: named, with the chunks of the commits that need it', async () => {
    const { dir, packs } = await copy();
    await fs.rm(packs[0]);
    const r = await faulty(dir, false);
    expect(r.kinds).toContain('pack-missing');
    expect(r.stdout).toMatch(new RegExp(`pack-missing: pack ${path.basename(packs[0]).slice(0, 12)} is missing`));
    expect(r.stdout).toMatch(/chunk-missing: chunk [0-9a-f]{12} of commit [0-9a-f]{12}:model\.safetensors/);
  });

  it('a corrupted metadata object: the object is named', async () => {
    const { dir, store } = await copy();
    const file = path.join(store, 'objects', 'meta', headId.slice(0, 2), headId.slice(2));
    const b = await fs.readFile(file);
    b[b.length - 3] ^= 0x20;
    await fs.writeFile(file, b);
    const r = await faulty(dir, false);
    expect(r.kinds).toContain('meta-corrupt');
    expect(r.stdout).toMatch(new RegExp(`meta-corrupt: metadata object ${headId.slice(0, 12)} is corrupt`));
    // the branch pointing at it is reported too
    expect(r.stdout).toMatch(new RegExp(`refs/heads/main points to ${headId.slice(0, 12)}, which is corrupt`));
  });

  it('a dangling ref: the ref and the id it names', async () => {
    const { dir, store } = await copy();
    const ghost = 'ab'.repeat(32);
    await fs.writeFile(path.join(store, 'refs', 'tags', 'ghost'), `${ghost}\n`);
    const r = await faulty(dir, false);
    expect(r.kinds).toEqual(['dangling-ref']);
    expect(r.stdout).toContain(`dangling-ref: refs/tags/ghost points to ${ghost}, which does not exist`);
  });

  it('a ref that holds no id', async () => {
    const { dir, store } = await copy();
    await fs.writeFile(path.join(store, 'refs', 'heads', 'broken'), 'not an id\n');
    const r = await faulty(dir, false);
    expect(r.kinds).toEqual(['ref-corrupt']);
  });
});
