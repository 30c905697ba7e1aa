/**
 * Files at the edges of the formats: a `.pt` that starts like a zip but is not one, a `.npy`
 * written by NumPy's own np.save with a header far past numpy's 10,000-byte default (a
 * structured dtype with many fields), a /proc file whose size says 0 while it has content, and a
 * file that shrinks under the reader.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isCkptError } from '../../src/core/errors.js';
import { openFileSource } from '../../src/store/fileSource.js';
import { SequentialReader } from '../../src/store/sequentialReader.js';
import { ckpt, ckptJson, ckptOk, cleanupTempDirs, tempDir } from '../e2e/helpers.js';

let repo: string;

beforeAll(async () => {
  repo = await tempDir('ckpt-edges-');
  await ckptOk(repo, 'init', '-q');
});
afterAll(cleanupTempDirs);

describe('a .pt that starts like a zip but is not one', () => {
  it('is refused as a damaged pytorch file unless --format opaque says to store it as bytes', async () => {
    // a local file header signature and nothing a zip reader or detector recognises after it
    const bad = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(200)]);
    await fs.writeFile(path.join(repo, 'broken.pt'), bad);
    const r = await ckpt(repo, 'commit', 'broken.pt', '-m', 'x', '--json');
    expect(r.code, r.stderr).toBe(3);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'E_FORMAT', format: 'pytorch' });
    expect(r.stderr).toMatch(/broken\.pt/);
    await ckptOk(repo, 'commit', 'broken.pt', '-m', 'opaque on purpose', '--format', 'opaque', '-q');
    await ckptOk(repo, 'checkout', 'HEAD', '-o', 'broken-back.pt', '-q');
    expect((await fs.readFile(path.join(repo, 'broken-back.pt'))).equals(bad)).toBe(true);
  });
});

describe('np.save of a structured dtype with many fields', () => {
  it('makes a ~116 KB header that ckpt parses, commits and checks out byte-exact', async () => {
    const file = path.join(repo, 'wide.npy');
    const made = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        `import numpy as np, sys
dt = np.dtype([("field_with_a_long_name_%05d" % i, "<f4") for i in range(3000)])
a = np.zeros(3, dtype=dt)
for i in range(0, 3000, 7): a["field_with_a_long_name_%05d" % i] = np.arange(3) + i
np.save(sys.argv[1], a)`,
        file,
      ],
      { encoding: 'utf8' },
    );
    expect(made.status, made.stderr).toBe(0);
    const bytes = await fs.readFile(file);
    const headerLen = bytes.readUInt32LE(8); // version 2.0: numpy needs it for a header this long
    expect(bytes[6]).toBe(2);
    expect(headerLen).toBeGreaterThan(100_000);
    const r = await ckptJson<{ files: { path: string; format: string; size: number }[] }>(repo, 'commit', 'wide.npy', '-m', 'wide');
    expect(r.files).toEqual([expect.objectContaining({ path: 'wide.npy', format: 'npy', size: bytes.length })]);
    await ckptOk(repo, 'checkout', 'HEAD', '-o', 'wide-back.npy', '-q');
    expect((await fs.readFile(path.join(repo, 'wide-back.npy'))).equals(bytes)).toBe(true);
  });
});

describe('files whose size is not what stat says', () => {
  it('commit /proc/self/status is refused clearly, never stored as 0 bytes', async () => {
    const r = await ckpt(repo, 'commit', '/proc/self/status', '-m', 'proc', '--json');
    expect(r.code, r.stderr).toBe(8);
    expect(JSON.parse(r.stdout).error.code).toBe('E_IO');
    expect(r.stderr).toMatch(/\/proc\/self\/status says it is 0 bytes but has content/);
  });

  it('a file that shrinks under the reader is an E_IO error naming it, not a RangeError', async () => {
    const dir = await tempDir('ckpt-shrink-');
    const file = path.join(dir, 'shrinks.bin');
    await fs.writeFile(file, Buffer.alloc(1 << 20, 1));
    const src = await openFileSource(file);
    await fs.truncate(file, 1000);
    const e1 = await src.read(0, 1 << 20).catch((e: unknown) => e);
    await src.close();
    expect(isCkptError(e1) && e1.code === 'E_IO', String(e1)).toBe(true);
    expect((e1 as Error).message).toMatch(/shrinks\.bin shrank while it was read/);

    await fs.writeFile(file, Buffer.alloc(1 << 20, 1));
    const fh = await fs.open(file, 'r');
    const reader = new SequentialReader(fh, 1 << 20, () => undefined, file);
    await fs.truncate(file, 1000);
    const e2 = await reader.take(1 << 20).catch((e: unknown) => e);
    await fh.close();
    expect(isCkptError(e2) && e2.code === 'E_IO', String(e2)).toBe(true);
    expect((e2 as Error).message).toMatch(/shrinks\.bin shrank while it was read/);
  });
});
