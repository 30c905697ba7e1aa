/**
 * The commit cache (src/store/commitCache.ts) stays one read for `ckpt log`: appends are
 * compacted into one segment before they pile up, and a damaged file is rewritten with its intact
 * entries by the next write; every entry written stays readable either way.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCacheFile } from '../../src/store/cacheFile.js';
import { CommitCache } from '../../src/store/commitCache.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

const id = (n: number) => n.toString(16).padStart(64, '0');
const bytes = (n: number) => Buffer.from(`commit object ${n} `.repeat(1 + (n % 5)));

describe('commit-cache', () => {
  it('compacts appends and keeps every entry', async () => {
    const dir = await tempDir('ckpt-commit-cache-');
    const file = path.join(dir, 'commit-cache');
    for (let n = 0; n < 150; n++) await new CommitCache(file, dir).append(id(n), bytes(n));
    const c = readCacheFile(file, 'CKCC', 1);
    expect(c.intact).toBe(true);
    expect(c.segments).toBeLessThanOrEqual(64);
    const cache = new CommitCache(file, dir);
    for (let n = 0; n < 150; n++) expect(Buffer.from(cache.get(id(n))!)).toEqual(bytes(n));
  });

  it('rewrites a damaged file with its intact entries at the next write', async () => {
    const dir = await tempDir('ckpt-commit-cache-damaged-');
    const file = path.join(dir, 'commit-cache');
    for (let n = 0; n < 5; n++) await new CommitCache(file, dir).append(id(n), bytes(n));
    const b = await fs.readFile(file);
    b[b.length - 3] ^= 0xff; // inside the last entry
    await fs.writeFile(file, b);
    expect(new CommitCache(file, dir).get(id(4))).toBeUndefined();
    await new CommitCache(file, dir).append(id(5), bytes(5));
    expect(readCacheFile(file, 'CKCC', 1)).toMatchObject({ intact: true, segments: 1 });
    const cache = new CommitCache(file, dir);
    for (const n of [0, 1, 2, 3, 5]) expect(Buffer.from(cache.get(id(n))!)).toEqual(bytes(n));
    expect(cache.get(id(4))).toBeUndefined(); // read from its object file by log
  });
});
