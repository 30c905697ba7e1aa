/**
 * The store written by format version 1 (fixtures/store-v1, made by its make.mjs), as a later
 * version finds it in a clone: it must open, resolve its refs, check every revision out
 * byte-exact and pass `fsck --read-data`. The committed store is copied first, never written.
 */
import { LocalBackend } from '../../src/backend/localBackend.js';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkIndex } from '../../src/store/chunkIndex.js';
import { CODEC_NONE, CODEC_PLANES, CODEC_ZIGZAG } from '../../src/store/chunkCodec.js';
import { cleanupTempDirs, FIXTURES, tempDir } from '../e2e/helpers.js';
import { ckptIn } from '../e2e/inProcess.js';

const FIXTURE = path.join(FIXTURES, 'store-v1');

interface Expected {
  revisions: Record<string, { commit: string; files: Record<string, string> }>;
}

let work: string;
let expected: Expected;

beforeAll(async () => {
  expected = JSON.parse(await fs.readFile(path.join(FIXTURE, 'expected.json'), 'utf8')) as Expected;
  work = await tempDir('ckpt-store-v1-');
  await fs.cp(path.join(FIXTURE, 'store'), path.join(work, '.ckpt'), { recursive: true });
});
afterAll(cleanupTempDirs);

const sha256 = async (f: string) => createHash('sha256').update(await fs.readFile(f)).digest('hex');

async function json<T = any>(...args: string[]): Promise<T> {
  const r = await ckptIn(work, ...args, '--json');
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

describe('a version-1 store from fixtures/', () => {
  it('holds plain, compressed (byte planes) and delta-coded chunks', async () => {
    const codecs = new Set([...(await ChunkIndex.load(new LocalBackend(path.join(work, '.ckpt')))).entries()].map((c) => c.codec));
    for (const c of [CODEC_NONE, CODEC_PLANES, CODEC_ZIGZAG]) expect(codecs).toContain(c);
  });

  it('resolves its branches, tag and history', async () => {
    for (const [rev, e] of Object.entries(expected.revisions)) expect((await json('show', rev)).id, rev).toBe(e.commit);
    const log = await json<{ message: string }[]>('log');
    expect(log.map((c) => c.message)).toEqual(['step 200', 'step 100']);
  });

  for (const rev of ['main~1', 'main', 'v1', 'exp']) {
    it(`checks out ${rev} byte-exact`, async () => {
      const out = await tempDir('ckpt-store-v1-out-');
      await json('checkout', rev, '-o', out);
      const files = expected.revisions[rev].files;
      expect((await fs.readdir(out)).sort()).toEqual(Object.keys(files).sort());
      for (const [name, hash] of Object.entries(files)) expect(await sha256(path.join(out, name)), name).toBe(hash);
    });
  }

  it('passes fsck --read-data', async () => {
    const f = await json('fsck', '--read-data');
    expect(f.faults ?? []).toEqual([]);
    expect(f.ok).toBe(true);
  });
});
