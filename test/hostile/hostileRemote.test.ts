/**
 * A remote is a stranger: its trees name the files a checkout writes, its refs name what a
 * fetch walks, its manifests carry settings, its answers may never end. Through a folder remote
 * and over HTTP, each crafted object is refused as E_CORRUPT naming the commit and the entry,
 * nothing is written outside (or inside) the target, and a peer that floods or stalls is given
 * up on within the stall timeout, with a typed error.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../src/core/canonical.js';
import { objectId } from '../../src/core/objectId.js';
import type { Manifest } from '../../src/core/objects.js';
import { clone } from '../../src/sync/clone.js';
import { fetchRemote } from '../../src/sync/fetch.js';
import { HttpBackend } from '../../src/backend/httpBackend.js';
import { openBackend } from '../../src/backend/openBackend.js';
import { addRemote } from '../../src/sync/remoteConfig.js';
import { startStoreServer, type StoreServer } from '../../src/serve/storeServer.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { Repository } from '../../src/repo/repository.js';
import { decodeIndexFile, encodeIndexFile } from '../../src/store/chunkIndex.js';
import { start } from '../e2e/helpers.js';
import { filesBelow, makeSource, plantCommit, plantMeta, plantRef, startHostileServer, watchPeakRss, type Source } from './craftedRemote.js';

let scratch: string;
let server: StoreServer;
let n = 0;

beforeAll(async () => {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-hostile-'));
  server = await startStoreServer({ root: path.join(scratch, 'served'), log: () => undefined });
});
afterAll(async () => {
  await server.close();
  await fs.rm(scratch, { recursive: true, force: true });
});

/** A fresh source repository, reachable as a folder and over HTTP. */
async function source(): Promise<Source & { urls: { folder: string; http: string }; name: string }> {
  const name = `src${++n}`;
  const dir = path.join(scratch, 'served', name);
  const s = await makeSource(dir);
  return { ...s, name, urls: { folder: dir, http: `${server.url}/${name}` } };
}

const BAD_PATHS: [string, string[]][] = [
  ['../../escaped.bin', ['../../escaped.bin']],
  ['sub/../../escaped2.bin', ['sub/../../escaped2.bin']],
  ['empty path', ['']],
  ['dot', ['.']],
  ['dot component', ['x/./y.bin']],
  ['absolute', ['/tmp/abs-escape.bin']],
  ['backslash', ['..\\..\\escaped3.bin']],
  ['NUL', ['a\0b.bin']],
  ['.git/config', ['.git/config']],
  ['.GIT/config', ['.GIT/config']],
  ['.git. (trailing dot)', ['.git./config']],
  ['.git with trailing spaces', ['.git  /config']],
  ['git~1 (8.3 short name)', ['GIT~1/config']],
  ['NTFS stream', ['.git::$INDEX_ALLOCATION/config']],
  ['HFS ignorable code point', ['.g\u200cit/config']],
  ['.ckpt/config', ['.ckpt/config']],
  ['.Ckpt/refs (case)', ['.Ckpt/refs/heads/main']],
  ['file and folder', ['a', 'a/b.bin']],
];

describe('crafted tree paths', () => {
  for (const via of ['folder', 'http'] as const) {
    it.each(BAD_PATHS)(`clone over ${via} refuses %s, naming commit and entry, writing nothing`, async (_label, paths) => {
      const s = await source();
      const { commit } = await plantCommit(s.storeDir, Object.fromEntries(paths.map((p) => [p, s.entry])));
      const parent = path.join(scratch, `clones-${++n}`, 'deep', 'er');
      await fs.mkdir(parent, { recursive: true });
      const target = path.join(parent, 'c');
      const before = await filesBelow(scratch);
      const err = await clone(s.urls[via], target).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, 'clone must fail').toMatchObject({ code: 'E_CORRUPT' });
      const msg = (err as Error).message;
      expect(msg).toContain(commit);
      expect(msg).toContain(JSON.stringify(paths.length > 1 ? 'a' : paths[0]));
      // no target, no work folder, and not one new file anywhere in the scratch area
      expect(await fs.readdir(parent)).toEqual([]);
      expect(await filesBelow(scratch)).toEqual(before);
      await expect(fs.access('/tmp/abs-escape.bin')).rejects.toThrow();
    });
  }

  it('fetch refuses the tree before any ref moves; a tree planted locally is refused by checkout, nothing written', async () => {
    const s = await source();
    const { commit } = await plantCommit(s.storeDir, { '../escaped.bin': s.entry, 'ok.bin': s.entry });
    const local = path.join(scratch, `local-${++n}`, 'work');
    await fs.mkdir(local, { recursive: true });
    const repo = await Repository.init(local);
    const t = await openBackend(s.urls.folder);
    await expect(fetchRemote(repo, t, { remoteName: 'origin' })).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(await repo.store.refs.list('refs/remotes/')).toEqual(new Map());
    // the same objects reaching the store another way (copied by hand): checkout still refuses
    await fs.cp(path.join(s.storeDir, 'objects'), path.join(repo.store.dir, 'objects'), { recursive: true });
    const before = await filesBelow(path.dirname(local));
    await expect(checkout(repo, commit)).rejects.toMatchObject({ code: 'E_CORRUPT', message: expect.stringContaining(commit) });
    expect(await filesBelow(path.dirname(local))).toEqual(before);
  });

  it('checkout does not follow a symlink it did not create under the work tree', async () => {
    const dir = path.join(scratch, `sym-${++n}`);
    const outside = path.join(scratch, `outside-${n}`);
    await fs.mkdir(path.join(dir, 'sub'), { recursive: true });
    await fs.mkdir(outside);
    const repo = await Repository.init(dir);
    await fs.writeFile(path.join(dir, 'sub', 'x.bin'), Buffer.alloc(5000, 7));
    const c = await commitFiles(repo, [path.join(dir, 'sub', 'x.bin')], { message: 'm' });
    await fs.rm(path.join(dir, 'sub'), { recursive: true });
    await fs.symlink(outside, path.join(dir, 'sub'));
    await expect(checkout(repo, c.id)).rejects.toMatchObject({ code: 'E_IO', message: expect.stringContaining('symlink') });
    expect(await fs.readdir(outside)).toEqual([]);
  });

  it('commit refuses to store a path a checkout elsewhere must not write', async () => {
    const dir = path.join(scratch, `commit-${++n}`);
    await fs.mkdir(path.join(dir, '.GIT'), { recursive: true });
    const repo = await Repository.init(dir);
    await fs.writeFile(path.join(dir, '.GIT', 'config'), 'x');
    await expect(commitFiles(repo, [path.join(dir, '.GIT', 'config')], { message: 'm' })).rejects.toMatchObject({ code: 'E_USAGE' });
    expect(await repo.headCommit()).toBeNull();
  });
});

describe('crafted refs and settings', () => {
  for (const via of ['folder', 'http'] as const) {
    it(`a ref naming a tree or a manifest is E_CORRUPT, not a crash (${via})`, async () => {
      const s = await source();
      const { tree } = await plantCommit(s.storeDir, { 'model.bin': s.entry });
      for (const [what, id] of [
        ['tree', tree],
        ['manifest', s.entry.manifest],
      ]) {
        await plantRef(s.storeDir, 'refs/heads/main', id);
        const target = path.join(scratch, `kind-${++n}`);
        await expect(clone(s.urls[via], target), what).rejects.toMatchObject({ code: 'E_CORRUPT', message: expect.stringContaining(`is a ${what}, not a commit`) });
        await expect(fs.access(target)).rejects.toThrow();
        const local = await Repository.init(await fs.mkdtemp(path.join(scratch, 'kf-')));
        await expect(fetchRemote(local, await openBackend(s.urls[via]), { remoteName: 'o' })).rejects.toMatchObject({ code: 'E_CORRUPT' });
        expect(await local.store.refs.list('refs/')).toEqual(new Map());
      }
    });

    it(`a manifest chunk size of -1, 0, 3, 2^40 or 1.5 is refused, never adopted (${via})`, async () => {
      const s = await source();
      for (const chunkSize of [-1, 0, 3, 2 ** 40, 1.5]) {
        const m = await plantMeta(s.storeDir, { ...(s.manifest as unknown as Record<string, unknown>), chunkSize, type: 'manifest' } as Manifest & Record<string, unknown>);
        await plantCommit(s.storeDir, { 'model.bin': { ...s.entry, manifest: m } });
        const target = path.join(scratch, `cs-${++n}`);
        await expect(clone(s.urls[via], target), String(chunkSize)).rejects.toMatchObject({ code: 'E_CORRUPT', message: expect.stringContaining('chunk size') });
        await expect(fs.access(target)).rejects.toThrow();
      }
    });
  }

  it('an index file with an impossible pack size or record is E_CORRUPT', async () => {
    const s = await source();
    const idxDir = path.join(s.storeDir, 'objects', 'index');
    const [name] = await fs.readdir(idxDir);
    const good = await fs.readFile(path.join(idxDir, name));
    const { pack, records } = decodeIndexFile(good, name);
    for (const [label, size, recs] of [
      ['negative pack size', -1, records],
      ['record past the end', 10, records],
      ['huge raw length', 1e6, records.map((r) => ({ ...r, raw: 2 ** 40 }))],
    ] as const) {
      const bad = encodeIndexFile(pack, size, recs as typeof records);
      await fs.rm(idxDir, { recursive: true });
      await fs.mkdir(idxDir);
      await fs.writeFile(path.join(idxDir, `${bad.id}.idx`), bad.bytes);
      const target = path.join(scratch, `idx-${++n}`);
      await expect(clone(s.urls.http, target), label).rejects.toMatchObject({ code: 'E_CORRUPT' });
      await expect(fs.access(target)).rejects.toThrow();
    }
    expect(objectId('index', good)).toBe(name.slice(0, 64));
  });
});

describe('a peer that floods or stalls', () => {
  const cases = [
    ['endless metadata body', { kind: 'meta', how: 'endless' }],
    ['dripping metadata body', { kind: 'meta', how: 'drip', dripMs: 100 }],
    ['silent on metadata', { kind: 'meta', how: 'silent' }],
    ['endless pack body', { kind: 'pack', how: 'endless' }],
    ['dripping pack body', { kind: 'pack', how: 'drip', dripMs: 100 }],
    ['dripping ref body', { kind: 'ref', how: 'drip', dripMs: 300 }],
  ] as const;
  it.each(cases)('%s: clone gives up within its stall timeout with E_REMOTE and leaves nothing', async (_label, sabotage) => {
    const s = await source();
    const hostile = await startHostileServer(s.storeDir, sabotage);
    const saved = process.env.CKPT_STALL_TIMEOUT;
    process.env.CKPT_STALL_TIMEOUT = '0.4';
    const target = path.join(scratch, `flood-${++n}`);
    try {
      const t0 = Date.now();
      await expect(clone(hostile.url, target)).rejects.toMatchObject({ code: 'E_REMOTE' });
      // three attempts (two retries) of at most a stall window or two each, and the backoff
      expect(Date.now() - t0).toBeLessThan(8000);
      await expect(fs.access(target)).rejects.toThrow();
    } finally {
      if (saved === undefined) delete process.env.CKPT_STALL_TIMEOUT;
      else process.env.CKPT_STALL_TIMEOUT = saved;
      await hostile.close();
    }
  });

  it('a ranged read takes no more than the range, a whole read no more than its kind allows', async () => {
    const s = await source();
    const hostile = await startHostileServer(s.storeDir, { kind: 'pack', how: 'endless' });
    try {
      const t = new HttpBackend(hostile.url, { stallMs: 400 });
      const [packKey] = (await t.list('objects/packs/')).map((k) => k.key);
      await expect(t.get(packKey, { offset: 0, length: 100 })).rejects.toMatchObject({ code: 'E_REMOTE' });
      await expect(t.getToFile(packKey, path.join(scratch, `p-${++n}`), { size: 30_000 })).rejects.toMatchObject({ code: 'E_REMOTE' });
      await t.close();
    } finally {
      await hostile.close();
    }
  });
});

describe('the CLI against a flooding or stalling peer (a child process, its peak RSS measured)', () => {
  const cases = [
    ['endless metadata body', { kind: 'meta', how: 'endless' }],
    ['endless pack body', { kind: 'pack', how: 'endless' }],
    ['dripping metadata body', { kind: 'meta', how: 'drip', dripMs: 50 }],
  ] as const;
  it.each(cases)('%s: `ckpt clone` exits 7 (E_REMOTE) in bounded time, under 300 MiB, writing nothing', async (_label, sabotage) => {
    const s = await source();
    const hostile = await startHostileServer(s.storeDir, sabotage);
    const parent = await fs.mkdtemp(path.join(scratch, 'cli-'));
    try {
      const t0 = Date.now();
      const run = start(parent, ['clone', hostile.url, 'c'], { CKPT_STALL_TIMEOUT: '1' });
      const rss = watchPeakRss(run.child.pid!);
      const r = await run.done;
      const peak = rss.stop();
      if (process.env.CKPT_TEST_REPORT) process.stderr.write(`peak RSS ${_label}: ${(peak / 2 ** 20).toFixed(0)} MiB, ${Date.now() - t0} ms, ${r.stderr.trim()}\n`);
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThan(300 * 1024 * 1024);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(await fs.readdir(parent)).toEqual([]);
    } finally {
      await hostile.close();
    }
  });
});
