/**
 * A remote's many-rank combine reads the parts' commits and trees from the remote: bytes that do
 * not hash to their id, or objects that hash right but are malformed (a bad parent, a tree path
 * climbing out of the checkout), must stop the combine with E_CORRUPT before anything is written.
 */
import { describe, expect, it } from 'vitest';
import { RefConflictError } from '../../src/core/errors.js';
import type { Commit, MetaObject, Tree } from '../../src/core/objects.js';
import type { Backend } from '../../src/backend/backend.js';
import { remoteParts } from '../../src/sync/remoteParts.js';
import { combineParts, partRef } from '../../src/repo/parts.js';
import { MetaStore } from '../../src/store/metaStore.js';
import { metaKey } from '../../src/backend/objectKeys.js';

const hex = (c: string) => c.repeat(64);

/** A remote in memory that serves whatever bytes it is given, as a hostile server may. */
function memoryRemote() {
  const objects = new Map<string, Uint8Array>();
  const refs = new Map<string, string>();
  const t = {
    url: 'memory:',
    list: async (prefix: string) => [...refs.keys()].filter((k) => k.startsWith(prefix)).sort().map((key) => ({ key, size: 64 })),
    get: async (key: string) => objects.get(key) ?? Promise.reject(new Error(`missing ${key}`)),
    put: async (key: string, body: { bytes: Uint8Array }) => void objects.set(key, body.bytes),
    readRef: async (ref: string) => refs.get(ref) ?? null,
    casRef: async (ref: string, expected: string | null, next: string | null) => {
      const actual = refs.get(ref) ?? null;
      if (actual !== expected) throw new RefConflictError(ref, expected, actual);
      if (next === null) refs.delete(ref);
      else refs.set(ref, next);
    },
  } as unknown as Backend;
  const store = (obj: MetaObject) => {
    const { id, bytes } = MetaStore.encode(obj);
    objects.set(metaKey(id), bytes);
    return id;
  };
  return { t, objects, refs, store };
}

function part(tree: string, rank: number, extra: Partial<Commit> = {}): Commit {
  return { type: 'commit', tree, parents: [], message: 'm', author: 'a', time: 1000, meta: { extra: { part: { group: 'g', rank, of: 2, branch: 'main' } } }, ...extra };
}

const treeOf = (name: string, c: string): Tree => ({ type: 'tree', files: { [name]: { manifest: hex(c), size: 1, hash: hex(c), format: 'raw' } } });

function setup(opts: { rank1?: (r: ReturnType<typeof memoryRemote>) => string } = {}) {
  const r = memoryRemote();
  r.refs.set(partRef('g', 0), r.store(part(r.store(treeOf('a.bin', 'a')), 0)));
  r.refs.set(partRef('g', 1), opts.rank1 ? opts.rank1(r) : r.store(part(r.store(treeOf('b.bin', 'b')), 1)));
  return r;
}

const combine = (r: ReturnType<typeof memoryRemote>) => combineParts(remoteParts(r.t, 'me', () => 2000), 'g');

describe('remote parts are verified before a combine builds on them', () => {
  it('honest parts combine', async () => {
    const r = setup();
    const done = await combine(r);
    expect(done.combined).toBe(true);
    expect(r.refs.get('refs/heads/main')).toBe(done.commit);
  });

  it('bytes that do not hash to the part id are E_CORRUPT, and the branch is not moved', async () => {
    const r = setup({
      rank1: (m) => {
        const honest = m.store(part(m.store(treeOf('b.bin', 'b')), 1));
        const other = MetaStore.encode(part(m.store(treeOf('evil.bin', 'e')), 1));
        m.objects.set(metaKey(honest), other.bytes);
        return honest;
      },
    });
    await expect(combine(r)).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(r.refs.has('refs/heads/main')).toBe(false);
  });

  it('a tree object served where the part names a commit is E_CORRUPT, not a missing rank', async () => {
    const r = setup({ rank1: (m) => m.store(treeOf('b.bin', 'b')) });
    await expect(combine(r)).rejects.toMatchObject({ code: 'E_CORRUPT' });
  });

  it('a well-hashed commit with malformed parents is E_CORRUPT', async () => {
    const r = setup({ rank1: (m) => m.store(part(m.store(treeOf('b.bin', 'b')), 1, { parents: ['not-an-id'] })) });
    await expect(combine(r)).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(r.refs.has('refs/heads/main')).toBe(false);
  });

  it('a well-hashed tree whose path climbs out of the checkout is E_CORRUPT', async () => {
    const r = setup({ rank1: (m) => m.store(part(m.store(treeOf('../../etc/evil', 'b')), 1)) });
    await expect(combine(r)).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(r.refs.has('refs/heads/main')).toBe(false);
  });
});
