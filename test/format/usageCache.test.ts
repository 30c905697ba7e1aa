/**
 * The usage cache's bytes (docs/format.md, "Index, commit and usage caches"): a file written
 * before must keep reading the same way, and the same entries must keep giving the same bytes.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blake3Hex } from '../../src/core/blake3.js';
import { UsageCache, decodeUsage, emptyUsage, encodeUsage } from '../../src/store/usageCache.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);
const D = 'd'.repeat(64);

function entries() {
  const e = emptyUsage();
  e.commits.set(A, { parents: [B], logical: 1000, manifests: [C], code: [] });
  e.manifests.set(C, [D, D]);
  e.sizes.get('pack')!.set(D, 4096);
  e.sizes.get('meta')!.set(C, 77);
  return e;
}

// kind 1 commit: id, 1 parent, f64 1000, 1 manifest, 0 code manifests
const COMMIT = `01${A}01000000${B}0000000000408f4001000000${C}00000000`;
// kind 2 manifest: id, 2 chunk ids
const MANIFEST = `02${C}02000000${D}${D}`;
// kind 3 sizes: 1 pack, id, f64 4096; 3 metadata object, id, f64 77
const SIZES = `0301${D}000000000000b0400303${C}0000000000405340`;
const PAYLOAD = COMMIT + MANIFEST + SIZES;

describe('usage-cache format', () => {
  it('encodes entries to fixed bytes and reads them back', () => {
    expect(encodeUsage(entries()).toString('hex')).toBe(PAYLOAD);
    const back = emptyUsage();
    decodeUsage(Buffer.from(PAYLOAD, 'hex'), back);
    expect(back).toEqual(entries());
  });

  it('is a CKUC version 1 cache file of hashed segments', async () => {
    const dir = await tempDir('ckpt-format-usage-');
    const file = path.join(dir, 'usage-cache');
    await new UsageCache(file, dir).record(entries());
    const payload = Buffer.from(PAYLOAD, 'hex');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(payload.length);
    const want = Buffer.concat([Buffer.from('CKUC', 'latin1'), Buffer.from([1, 0, 0, 0]), len, Buffer.from(blake3Hex(payload), 'hex'), payload]);
    expect((await fs.readFile(file)).toString('hex')).toBe(want.toString('hex'));
    // a second write appends a segment
    await new UsageCache(file, dir).record(entries());
    expect((await fs.readFile(file)).length).toBe(want.length * 2 - 8);
    expect(new UsageCache(file, dir).read()).toEqual(entries());
  });
});
