/**
 * MetaStore.get decodes an object once and verifies it as getRaw does: bytes that do not hash to
 * their id under their own type are corrupt, whatever type was asked for; an intact object of
 * another type is not found as the type asked.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { encodeCanonical } from '../../src/core/canonical.js';
import type { Commit, Tree } from '../../src/core/objects.js';
import { LocalBackend } from '../../src/backend/localBackend.js';
import { MetaStore } from '../../src/store/metaStore.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

const tree: Tree = { type: 'tree', files: {} };
const commit = (message: string): Commit => ({ type: 'commit', tree: 'ab'.repeat(32), parents: [], message, author: 'a@b', time: 1, meta: {} });

test('get: the object, once verified; corrupt bytes, a type in disguise and garbage are E_CORRUPT; another type is E_NOT_FOUND', async () => {
  const dir = await tempDir('ckpt-meta-get-');
  const meta = new MetaStore(new LocalBackend(dir));
  const pathOf = (id: string) => path.join(dir, 'objects', 'meta', id.slice(0, 2), id.slice(2));
  const t = await meta.put(tree);
  const c = await meta.put(commit('first'));
  expect(await meta.get<Commit>(c, 'commit')).toEqual(commit('first'));
  expect(await meta.get<Tree>(t, 'tree')).toEqual(tree);

  // an intact object asked as another type
  await expect(meta.get(t, 'commit')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  // another valid commit's bytes under this id
  await fs.writeFile(pathOf(c), encodeCanonical(commit('second')));
  await expect(meta.get(c, 'commit')).rejects.toMatchObject({ code: 'E_CORRUPT' });
  await expect(meta.getRaw(c)).rejects.toMatchObject({ code: 'E_CORRUPT' });
  // the tree's bytes relabelled as a commit: the id is checked under the type the bytes say
  await fs.writeFile(pathOf(c), encodeCanonical({ ...tree, type: 'commit' }));
  await expect(meta.get(c, 'commit')).rejects.toMatchObject({ code: 'E_CORRUPT' });
  // not msgpack at all, and an unknown type
  await fs.writeFile(pathOf(t), Buffer.from([0xc1, 0xc1, 0xc1]));
  await expect(meta.get(t, 'tree')).rejects.toMatchObject({ code: 'E_CORRUPT' });
  await fs.writeFile(pathOf(t), encodeCanonical({ type: 'pack', files: {} }));
  await expect(meta.get(t, 'tree')).rejects.toMatchObject({ code: 'E_CORRUPT' });
  // missing
  await expect(meta.get('cd'.repeat(32), 'tree')).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
});
