/**
 * The local cache of a store elsewhere (objectCache.ts through cachingBackend.ts): index files and
 * metadata objects are fetched once and then served locally, verified on every read; a damaged
 * cache file is deleted and fetched again, never returned; the cache stays under its byte budget,
 * least recently used first; deleting it at any time only costs fetches; and nothing mutable
 * (refs, HEAD, config) nor any pack byte is ever served from it.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend/backend.js';
import { CachingBackend } from '../../src/backend/cachingBackend.js';
import { LocalBackend } from '../../src/backend/localBackend.js';
import { ObjectCache } from '../../src/backend/objectCache.js';
import { metaKey } from '../../src/backend/objectKeys.js';
import { MetaStore } from '../../src/store/metaStore.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { cleanupTempDirs, ckptOk, randomF32, tempDir } from '../e2e/helpers.js';

/** The calls that reach the store behind the cache, as `method key`. */
function spied(inner: Backend): { backend: Backend; calls: string[] } {
  const calls: string[] = [];
  const backend = new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(`${String(prop)} ${String(args[0])}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { backend, calls };
}

let storeDir: string;
let indexKeys: string[];
let metaKeys: string[];
let packKeys: string[];

beforeAll(async () => {
  // a real store with a few commits: its index files and metadata objects are what gets cached
  const work = await tempDir('ckpt-cache-store-');
  await ckptOk(work, 'init');
  for (let v = 1; v <= 3; v++) {
    const bytes = writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64 * 1024], data: randomF32(v, 64 * 1024) }]);
    await fs.writeFile(path.join(work, 'm.safetensors'), bytes);
    await ckptOk(work, 'commit', 'm.safetensors', '-m', `v${v}`);
  }
  storeDir = path.join(work, '.ckpt');
  const local = new LocalBackend(storeDir);
  indexKeys = (await local.list('objects/index/')).map((k) => k.key);
  metaKeys = (await local.list('objects/meta/')).map((k) => k.key);
  packKeys = (await local.list('objects/packs/')).map((k) => k.key);
});
afterAll(cleanupTempDirs);

async function cached(maxBytes = 64 * 1024 * 1024): Promise<{ backend: CachingBackend; calls: string[]; cache: ObjectCache; root: string }> {
  const root = await tempDir('ckpt-cache-');
  const { backend: inner, calls } = spied(new LocalBackend(storeDir));
  const cache = new ObjectCache({ root, dir: path.join(root, 'store'), maxBytes });
  return { backend: new CachingBackend(inner, cache), calls, cache, root };
}

const gets = (calls: string[], key: string) => calls.filter((c) => c === `get ${key}`).length;

describe('the cache of a store elsewhere', () => {
  it('fetches an index file or a metadata object once, then serves it from the cache, bytes unchanged', async () => {
    const { backend, calls } = await cached();
    for (const key of [...indexKeys, ...metaKeys]) {
      const first = await backend.get(key);
      const again = await backend.get(key);
      expect(Buffer.from(again).equals(Buffer.from(first))).toBe(true);
      expect(Buffer.from(first).equals(await fs.readFile(path.join(storeDir, ...key.split('/'))))).toBe(true);
      expect(gets(calls, key)).toBe(1);
    }
  });

  it('keeps what it writes: an object put through it is not fetched back', async () => {
    const root = await tempDir('ckpt-cache-put-');
    const target = await tempDir('ckpt-cache-target-');
    const { backend: inner, calls } = spied(new LocalBackend(target));
    const backend = new CachingBackend(inner, new ObjectCache({ root, dir: path.join(root, 'store'), maxBytes: 1 << 26 }));
    const key = metaKeys[0];
    const bytes = await fs.readFile(path.join(storeDir, ...key.split('/')));
    await backend.put(key, { bytes });
    expect(Buffer.from(await backend.get(key)).equals(bytes)).toBe(true);
    expect(gets(calls, key)).toBe(0);
  });

  it('deletes a damaged cache file and fetches the object again, never returning the damage', async () => {
    const { backend, calls, cache } = await cached();
    const key = indexKeys[0];
    const good = Buffer.from(await backend.get(key));
    const file = cache.fileOf(key);
    // a flipped byte, then a truncated file, then a file swapped for another object's bytes
    const damages = [
      Buffer.from(good.map((b, i) => (i === 10 ? b ^ 1 : b))),
      good.subarray(0, good.length - 3),
      await fs.readFile(path.join(storeDir, ...metaKeys[0].split('/'))),
    ];
    for (const [i, bad] of damages.entries()) {
      await fs.writeFile(file, bad);
      const got = Buffer.from(await backend.get(key));
      expect(got.equals(good)).toBe(true);
      expect(gets(calls, key)).toBe(2 + i);
      // the refetched object replaced the damaged file
      expect((await fs.readFile(file)).equals(good)).toBe(true);
    }
    expect(cache.stats.corrupt).toBe(3);
  });

  it('can be deleted at any time, also between reads of one run: a missing file or folder is a miss', async () => {
    const { backend, calls, root } = await cached();
    const key = metaKeys[1];
    await backend.get(key);
    await fs.rm(root, { recursive: true, force: true });
    expect(Buffer.from(await backend.get(key)).equals(await fs.readFile(path.join(storeDir, ...key.split('/'))))).toBe(true);
    expect(gets(calls, key)).toBe(2);
    // and it fills again
    await backend.get(key);
    expect(gets(calls, key)).toBe(2);
  });

  it('stays within its byte budget, dropping the least recently used objects first', async () => {
    // forty metadata objects of about 1 KiB each in a store of their own, and room for about ten
    const dir = await tempDir('ckpt-cache-many-');
    const many = new LocalBackend(dir);
    const keys: string[] = [];
    for (let i = 0; i < 40; i++) {
      const { id, bytes } = MetaStore.encode({ type: 'commit', n: i, pad: 'x'.repeat(1000) } as never);
      await many.put(metaKey(id), { bytes });
      keys.push(metaKey(id));
    }
    const budget = 10 * 1024;
    const root = await tempDir('ckpt-cache-');
    const cache = new ObjectCache({ root, dir: path.join(root, 'store'), maxBytes: budget });
    const backend = new CachingBackend(many, cache);
    let t = 1_000_000_000;
    (cache as unknown as { now: () => number }).now = () => (t += 1000);
    const keep = keys[0];
    for (const key of keys) {
      await backend.get(key);
      await backend.get(keep); // used all along: never the least recently used
    }
    expect(cache.bytes).toBeLessThanOrEqual(budget);
    expect(cache.stats.evicted).toBeGreaterThan(20);
    const onDisk = async (d: string): Promise<number> => {
      let n = 0;
      for (const e of await fs.readdir(d, { withFileTypes: true })) n += e.isDirectory() ? await onDisk(path.join(d, e.name)) : (await fs.stat(path.join(d, e.name))).size;
      return n;
    };
    expect(await onDisk(root)).toBeLessThanOrEqual(budget);
    // the one in use and the newest stay; the oldest others went first
    await expect(fs.stat(cache.fileOf(keep))).resolves.toBeTruthy();
    await expect(fs.stat(cache.fileOf(keys[39]))).resolves.toBeTruthy();
    await expect(fs.stat(cache.fileOf(keys[1]))).rejects.toThrow();
  });

  it('counts every store under its root against the one budget', async () => {
    const root = await tempDir('ckpt-cache-shared-');
    const other = path.join(root, 'other-store', 'objects', 'meta', 'aa');
    await fs.mkdir(other, { recursive: true });
    await fs.writeFile(path.join(other, 'b'.repeat(62)), Buffer.alloc(1000));
    const cache = new ObjectCache({ root, dir: path.join(root, 'store'), maxBytes: 1 << 20 });
    await new CachingBackend(new LocalBackend(storeDir), cache).get(metaKeys[0]);
    expect(cache.bytes).toBe(1000 + (await fs.stat(cache.fileOf(metaKeys[0]))).size);
  });

  it('never serves refs, HEAD, config or pack bytes from the cache', async () => {
    const { backend, calls, root } = await cached();
    for (let i = 0; i < 2; i++) {
      await backend.readRef('refs/heads/main');
      await backend.readFile('HEAD');
      await backend.readFile('config');
      await backend.get(packKeys[0], { offset: 0, length: 16 });
      const r = await backend.openRanges(packKeys[0]);
      await r.read(0, 16);
      await r.close();
    }
    expect(calls.filter((c) => c === 'readRef refs/heads/main')).toHaveLength(2);
    expect(calls.filter((c) => c === 'readFile HEAD')).toHaveLength(2);
    expect(calls.filter((c) => c === 'readFile config')).toHaveLength(2);
    expect(calls.filter((c) => c === `get ${packKeys[0]}`)).toHaveLength(2);
    expect(calls.filter((c) => c === `openRanges ${packKeys[0]}`)).toHaveLength(2);
    // a whole pack read is not kept either
    await backend.get(packKeys[0]);
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
        if (e.isDirectory()) await walk(path.join(d, e.name));
        else files.push(e.name);
      }
    };
    await walk(root);
    expect(files.filter((f) => f.endsWith('.pack'))).toEqual([]);
  });

  it('asks the store, not the cache, whether an object exists: gc may have deleted it since', async () => {
    const target = await tempDir('ckpt-cache-stat-');
    await fs.cp(storeDir, target, { recursive: true });
    const root = await tempDir('ckpt-cache-');
    const backend = new CachingBackend(new LocalBackend(target), new ObjectCache({ root, dir: path.join(root, 'store'), maxBytes: 1 << 26 }));
    const key = metaKeys[2];
    await backend.get(key);
    await fs.rm(path.join(target, ...key.split('/')));
    expect(await backend.stat(key)).toBeUndefined();
  });
});
