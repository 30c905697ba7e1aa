/**
 * Pinned text files of a store: a new store's config and HEAD, a ref, its reflog line, a
 * detached HEAD (docs/format.md). A store written before must keep reading the same way.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const ZERO = '0'.repeat(64);

describe('store text files', () => {
  it('config, HEAD, refs and the reflog have fixed bytes', async () => {
    const dir = path.join(await tempDir('ckpt-format-'), '.ckpt');
    const store = await Store.create(dir, undefined, { clock: () => 1_764_000_000_000 });
    const read = (f: string) => fs.readFile(path.join(dir, f), 'utf8');
    expect(await read('config')).toBe(
      '{\n  "version": 1,\n  "chunkSize": 1048576,\n  "compression": {\n    "mode": "auto",\n    "level": 1,\n    "maxDeltaChain": 4\n  },\n  "remotes": {}\n}\n',
    );
    expect(await read('HEAD')).toBe('ref: refs/heads/main\n');

    await store.refs.cas('refs/heads/main', null, A, 'commit (initial): one');
    await store.refs.cas('refs/heads/main', A, B, 'commit:  two\n  lines');
    await store.refs.cas('refs/tags/v1', null, A, 'tag: created');
    await store.refs.cas('refs/tags/v1', A, null, 'tag: deleted');
    expect(await read('refs/heads/main')).toBe(`${B}\n`);
    expect(await read('logs/refs/heads/main')).toBe(`${ZERO} ${A} 1764000000000 commit (initial): one\n${A} ${B} 1764000000000 commit: two lines\n`);
    expect(await read('logs/refs/tags/v1')).toBe(`${ZERO} ${A} 1764000000000 tag: created\n${A} ${ZERO} 1764000000000 tag: deleted\n`);
    await expect(fs.access(path.join(dir, 'refs/tags/v1'))).rejects.toThrow();

    await store.refs.writeHead({ kind: 'detached', id: B });
    expect(await read('HEAD')).toBe(`${B}\n`);
    expect(await store.refs.log('refs/heads/main')).toEqual([
      { old: null, next: A, time: 1_764_000_000_000, reason: 'commit (initial): one' },
      { old: A, next: B, time: 1_764_000_000_000, reason: 'commit: two lines' },
    ]);
  });
});
