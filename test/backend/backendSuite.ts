/**
 * The one conformance suite every backend runs (restic's backend tests, unstorage's driver
 * suite): the same keys, the same refusals, the same compare-and-swap outcome, the same store
 * files, reflog and locks, whatever moves the bytes. The hostile-input cases a backend can meet
 * (odd keys, bytes that are not what their key names, refs that are not ids, oversized answers,
 * junk beside the store's keys) live here too, so every backend inherits them.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../src/core/canonical.js';
import { objectId } from '../../src/core/objectId.js';
import { indexKey, markKey, metaKey, packKey } from '../../src/backend/objectKeys.js';
import { STORE_FILE_MAX, type Backend, type RemoteLock } from '../../src/backend/backend.js';
import { parseReflog } from '../../src/backend/reflogLine.js';
import { RetryingBackend } from '../../src/backend/retryingBackend.js';
import { StallError } from '../../src/backend/stallGuard.js';
import { FaultyBackend, permanent } from './faultyBackend.js';

export interface TestObject {
  key: string;
  bytes: Uint8Array;
}

export function makePack(size = 4096): TestObject {
  const bytes = randomBytes(size);
  return { key: packKey(objectId('pack', bytes)), bytes };
}

export function makeIndex(size = 512): TestObject {
  const bytes = randomBytes(size);
  return { key: indexKey(objectId('index', bytes)), bytes };
}

export function makeMeta(fields: Record<string, unknown> = {}): TestObject {
  const bytes = encodeCanonical({ type: 'commit', message: 'test', nonce: randomBytes(8).toString('hex'), ...fields });
  return { key: metaKey(objectId('commit', bytes)), bytes };
}

export const commitId = () => objectId('commit', randomBytes(32));

export interface BackendFixture {
  /**
   * A new client of this fixture's store (each fixture is a fresh, empty store); `lockWaitMs`
   * bounds how long its lockShared and lockExclusive wait.
   */
  open(opts?: { lockWaitMs?: number }): Promise<Backend>;
  /** Writes raw bytes at a path of the store (a key or anything else) behind the backend's back. */
  plant(path: string, bytes: Uint8Array): Promise<void>;
  /** Removes every store lock (shared and gc) behind the holders' backs, as one who judged them stale would. */
  breakLocks(): Promise<void>;
  /** Leaves a shared lock whose holder vanished without releasing it (a dead process, a lease never renewed). */
  abandonSharedLock(): Promise<void>;
  /** How long an abandoned lock takes to lapse on this backend (0: it is known dead at once). */
  lapseMs: number;
}

export interface SuiteOptions {
  /** Why compare-and-swap cannot be tested against this server; the CAS race tests are skipped. */
  casSkipReason?: string;
  /** Why this remote allows a ref and a folder of refs under the same name (a flat key space). */
  flatRefsReason?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `f` until it returns true, failing after `ms`. */
async function eventually(what: string, ms: number, f: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await f()) return;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what}`);
    await sleep(50);
  }
}

const throwsLocked = (lock: RemoteLock) => {
  try {
    lock.check();
    return false;
  } catch (e) {
    expect(e).toMatchObject({ code: 'E_LOCKED' });
    return true;
  }
};

export function backendSuite(name: string, makeRemote: () => Promise<BackendFixture>, options: SuiteOptions = {}) {
  describe(`backend: ${name}`, () => {
    const opened: Backend[] = [];
    let scratch: string;

    beforeAll(async () => {
      scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-suite-'));
    });
    afterAll(async () => {
      await fs.rm(scratch, { recursive: true, force: true });
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((t) => t.close?.()));
    });

    async function remote(): Promise<{ t: Backend; fixture: BackendFixture; another(opts?: { lockWaitMs?: number }): Promise<Backend> }> {
      const fixture = await makeRemote();
      const another = async (opts?: { lockWaitMs?: number }) => {
        const t = await fixture.open(opts);
        opened.push(t);
        return t;
      };
      return { t: await another(), fixture, another };
    }

    async function scratchFile(bytes: Uint8Array): Promise<string> {
      const file = path.join(scratch, `${randomBytes(6).toString('hex')}.bin`);
      await fs.writeFile(file, bytes);
      return file;
    }

    it('an empty remote lists nothing and has no refs', async () => {
      const { t } = await remote();
      expect(await t.list('objects/')).toEqual([]);
      expect(await t.list('refs/')).toEqual([]);
      expect(await t.readRef('refs/heads/main')).toBeNull();
      expect(await t.stat(makePack().key)).toBeUndefined();
    });

    it('puts, gets, stats and lists each kind of object', async () => {
      const { t } = await remote();
      const objs = [makePack(10_000), makeIndex(), makeMeta({ step: 1 })];
      for (const o of objs) await t.put(o.key, { bytes: o.bytes });
      for (const o of objs) {
        expect(Buffer.from(await t.get(o.key)).equals(Buffer.from(o.bytes))).toBe(true);
        expect(await t.stat(o.key)).toMatchObject({ key: o.key, size: o.bytes.byteLength });
      }
      const all = await t.list('objects/');
      expect(all.map(({ key, size }) => ({ key, size }))).toEqual(objs.map((o) => ({ key: o.key, size: o.bytes.byteLength })).sort((a, b) => (a.key < b.key ? -1 : 1)));
      expect((await t.list('objects/packs/')).map(({ key, size }) => ({ key, size }))).toEqual([{ key: objs[0].key, size: 10_000 }]);
      expect((await t.list('objects/index/')).map(({ key, size }) => ({ key, size }))).toEqual([{ key: objs[1].key, size: objs[1].bytes.byteLength }]);
      expect((await t.list('objects/meta/')).map((k) => k.key)).toEqual([objs[2].key]);
      // a prefix that ends inside a name, as a fan-out directory of metadata
      expect((await t.list(objs[2].key.slice(0, 'objects/meta/'.length + 2))).map((k) => k.key)).toEqual([objs[2].key]);
      expect(await t.list('refs/')).toEqual([]);
    });

    it('reads byte ranges', async () => {
      const { t } = await remote();
      const p = makePack(100_000);
      await t.put(p.key, { bytes: p.bytes });
      for (const [offset, length] of [
        [0, 1],
        [0, 100_000],
        [12_345, 40_000],
        [99_999, 1],
        [50_000, 0],
      ]) {
        const got = await t.get(p.key, { offset, length });
        expect(Buffer.from(got).equals(Buffer.from(p.bytes.subarray(offset, offset + length)))).toBe(true);
      }
      await expect(t.get(p.key, { offset: 99_990, length: 20 })).rejects.toMatchObject({ code: 'E_REMOTE' });
      await expect(t.get(p.key, { offset: 200_000, length: 5 })).rejects.toMatchObject({ code: 'E_REMOTE' });
      await expect(t.get(p.key, { offset: -1, length: 5 })).rejects.toMatchObject({ code: 'E_USAGE' });
    });

    it('answers NotFound for missing objects', async () => {
      const { t } = await remote();
      const p = makePack();
      await expect(t.get(p.key)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await expect(t.get(p.key, { offset: 0, length: 4 })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await expect(t.getToFile(p.key, path.join(scratch, 'missing.pack'))).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await expect(fs.stat(path.join(scratch, 'missing.pack'))).rejects.toThrow();
    });

    it('re-putting an existing object is a no-op success', async () => {
      const { t } = await remote();
      const p = makePack(5000);
      const m = makeMeta();
      await t.put(p.key, { bytes: p.bytes });
      await t.put(p.key, { bytes: p.bytes });
      await t.put(p.key, { file: await scratchFile(p.bytes) });
      await t.put(m.key, { bytes: m.bytes });
      await t.put(m.key, { bytes: m.bytes });
      expect(await t.list('objects/')).toHaveLength(2);
      expect(Buffer.from(await t.get(p.key)).equals(Buffer.from(p.bytes))).toBe(true);
    });

    it('refuses bytes that do not match their key and stores nothing', async () => {
      const { t } = await remote();
      const p = makePack(3000);
      const other = makePack(3000);
      const m = makeMeta();
      const i = makeIndex();
      await expect(t.put(p.key, { bytes: other.bytes })).rejects.toMatchObject({ code: 'E_CORRUPT' });
      await expect(t.put(i.key, { bytes: other.bytes })).rejects.toMatchObject({ code: 'E_CORRUPT' });
      // a metadata object of the right shape but another id, and one that is not msgpack at all
      await expect(t.put(m.key, { bytes: makeMeta().bytes })).rejects.toMatchObject({ code: 'E_CORRUPT' });
      await expect(t.put(m.key, { bytes: other.bytes })).rejects.toMatchObject({ code: 'E_CORRUPT' });
      // the same pack bytes hash differently in the index domain
      await expect(t.put(indexKey(p.key.slice(14, 78)), { bytes: p.bytes })).rejects.toMatchObject({ code: 'E_CORRUPT' });
      // a streamed file, checked by whoever receives it
      const big = makePack(6 * 1024 * 1024);
      await expect(t.put(big.key, { file: await scratchFile(makePack(6 * 1024 * 1024).bytes) })).rejects.toMatchObject({
        code: 'E_CORRUPT',
      });
      expect(await t.list('')).toEqual([]);
      expect(await t.stat(p.key)).toBeUndefined();
      expect(await t.stat(big.key)).toBeUndefined();
    });

    it('refuses keys that are not store keys', async () => {
      const { t } = await remote();
      const p = makePack();
      const bad = [
        '../x',
        '/etc/passwd',
        'objects/packs/zz.pack',
        `objects/packs/../../${p.key}`,
        `/${p.key}`,
        `${p.key}/`,
        'objects\\packs\\x',
        'tmp/x',
        'configs',
        '',
      ];
      for (const key of bad) {
        await expect(t.put(key, { bytes: p.bytes }), key).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(t.get(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        if (key !== 'config') await expect(t.stat(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(t.delete(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(t.openRanges(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(t.getToFile(key, path.join(scratch, 'bad')), key).rejects.toMatchObject({ code: 'E_USAGE' });
      }
      for (const ref of ['refs/heads/../x', 'refs/other/x', 'refs/heads/x.lock', 'refs/heads/.hidden', 'refs/heads//x', 'HEAD', 'logs/refs/heads/main', '../refs/heads/x', p.key]) {
        await expect(t.readRef(ref), ref).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(t.casRef(ref, null, commitId()), ref).rejects.toMatchObject({ code: 'E_USAGE' });
      }
      for (const prefix of ['../', '/objects/', 'objects/../../', 'objects\\']) {
        await expect(t.list(prefix), prefix).rejects.toMatchObject({ code: 'E_USAGE' });
      }
      // refs move only by compare-and-swap
      await expect(t.put('refs/heads/main', { bytes: Buffer.from(`${commitId()}\n`) })).rejects.toMatchObject({
        code: 'E_USAGE',
      });
      await expect(t.delete('refs/heads/main')).rejects.toMatchObject({ code: 'E_USAGE' });
      await expect(t.casRef('refs/heads/main', null, 'not-an-id')).rejects.toMatchObject({ code: 'E_USAGE' });
      expect(await t.list('')).toEqual([]);
    });

    it('streams a multi-MiB pack from a file and back to a file', async () => {
      const { t } = await remote();
      const p = makePack(13 * 1024 * 1024 + 17);
      await t.put(p.key, { file: await scratchFile(p.bytes) });
      expect(await t.stat(p.key)).toMatchObject({ key: p.key, size: p.bytes.byteLength });
      const destDir = path.join(scratch, randomBytes(4).toString('hex'), 'packs');
      const dest = path.join(destDir, 'got.pack');
      await t.getToFile(p.key, dest);
      expect((await fs.readFile(dest)).equals(Buffer.from(p.bytes))).toBe(true);
      expect(await fs.readdir(destDir)).toEqual(['got.pack']);
      const mid = await t.get(p.key, { offset: 7 * 1024 * 1024 - 3, length: 1024 * 1024 });
      expect(Buffer.from(mid).equals(Buffer.from(p.bytes.subarray(7 * 1024 * 1024 - 3, 8 * 1024 * 1024 - 3)))).toBe(true);
    });

    it('verifies what it reads: corrupt remote bytes never reach the caller', async () => {
      const { t, fixture } = await remote();
      const p = makePack(2 * 1024 * 1024);
      const m = makeMeta();
      await fixture.plant(p.key, makePack(2 * 1024 * 1024).bytes);
      await fixture.plant(m.key, makeMeta().bytes);
      await expect(t.get(p.key)).rejects.toMatchObject({ code: 'E_CORRUPT' });
      await expect(t.get(m.key)).rejects.toMatchObject({ code: 'E_CORRUPT' });
      const dir = path.join(scratch, randomBytes(4).toString('hex'));
      await expect(t.getToFile(p.key, path.join(dir, 'x.pack'))).rejects.toMatchObject({ code: 'E_CORRUPT' });
      await expect(t.getToFile(m.key, path.join(dir, 'm'))).rejects.toMatchObject({ code: 'E_CORRUPT' });
      expect(await fs.readdir(dir)).toEqual([]);
    });

    it('deletes objects; deleting a missing one succeeds', async () => {
      const { t } = await remote();
      const p = makePack();
      const m = makeMeta();
      await t.put(p.key, { bytes: p.bytes });
      await t.put(m.key, { bytes: m.bytes });
      await t.delete(p.key);
      expect(await t.stat(p.key)).toBeUndefined();
      await t.delete(p.key);
      expect((await t.list('objects/')).map((k) => k.key)).toEqual([m.key]);
    });

    it('creates, reads, updates and deletes refs by compare-and-swap', async () => {
      const { t } = await remote();
      const [a, b, c] = [commitId(), commitId(), commitId()];
      const ref = 'refs/heads/main';
      await t.casRef(ref, null, a);
      expect(await t.readRef(ref)).toBe(a);
      expect((await t.list('refs/')).map(({ key, size }) => ({ key, size }))).toEqual([{ key: ref, size: 65 }]);
      expect(Buffer.from(await t.get(ref)).toString()).toBe(`${a}\n`);
      await t.casRef(ref, a, b);
      expect(await t.readRef(ref)).toBe(b);
      await t.casRef('refs/tags/v1.0', null, a);
      await t.casRef('refs/heads/team/feature-x', null, c);
      expect((await t.list('refs/')).map((k) => k.key)).toEqual([
        'refs/heads/main',
        'refs/heads/team/feature-x',
        'refs/tags/v1.0',
      ]);
      expect((await t.list('refs/tags/')).map((k) => k.key)).toEqual(['refs/tags/v1.0']);
      await t.casRef(ref, b, null);
      expect(await t.readRef(ref)).toBeNull();
      // deleting what is already gone, expecting it gone, changes nothing
      await t.casRef(ref, null, null);
      expect((await t.list('refs/heads/')).map((k) => k.key)).toEqual(['refs/heads/team/feature-x']);
    });

    it('refuses a compare-and-swap whose expected value is stale, leaving the ref as it was', async () => {
      const { t } = await remote();
      const [a, b, c] = [commitId(), commitId(), commitId()];
      const ref = 'refs/heads/main';
      await t.casRef(ref, null, a);
      await expect(t.casRef(ref, b, c)).rejects.toMatchObject({
        code: 'E_REF_CONFLICT',
        data: { ref, expected: b, actual: a },
      });
      await expect(t.casRef(ref, null, c)).rejects.toMatchObject({ code: 'E_REF_CONFLICT', data: { actual: a } });
      await expect(t.casRef(ref, b, null)).rejects.toMatchObject({ code: 'E_REF_CONFLICT', data: { actual: a } });
      await expect(t.casRef(ref, null, null)).rejects.toMatchObject({ code: 'E_REF_CONFLICT', data: { actual: a } });
      await expect(t.casRef('refs/heads/other', a, b)).rejects.toMatchObject({
        code: 'E_REF_CONFLICT',
        data: { actual: null },
      });
      expect(await t.readRef(ref)).toBe(a);
      expect(await t.readRef('refs/heads/other')).toBeNull();
    });

    const raceIt = options.casSkipReason ? it.skip : it;
    if (options.casSkipReason) {
      it.skip(`compare-and-swap races: skipped, ${options.casSkipReason}`, () => undefined);
    }

    raceIt('of two clients creating the same ref at once, exactly one wins', async () => {
      const { another } = await remote();
      const ref = 'refs/heads/main';
      for (let round = 0; round < 3; round++) {
        const [x, y] = [await another(), await another()];
        const r = `${ref}-${round}`;
        const values = [commitId(), commitId()];
        const results = await Promise.allSettled([x.casRef(r, null, values[0]), y.casRef(r, null, values[1])]);
        const won = results.findIndex((s) => s.status === 'fulfilled');
        expect(results.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
        const lost = results[1 - won] as PromiseRejectedResult;
        expect(lost.reason).toMatchObject({ code: 'E_REF_CONFLICT' });
        expect(await x.readRef(r)).toBe(values[won]);
      }
    });

    raceIt('of several clients advancing a ref from the same value, exactly one wins', async () => {
      const { t, another } = await remote();
      const ref = 'refs/heads/main';
      const base = commitId();
      await t.casRef(ref, null, base);
      const clients = await Promise.all(Array.from({ length: 5 }, () => another()));
      const values = clients.map(() => commitId());
      const results = await Promise.allSettled(clients.map((c, i) => c.casRef(ref, base, values[i])));
      const winners = results.flatMap((s, i) => (s.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      for (const s of results) {
        if (s.status === 'rejected') expect(s.reason).toMatchObject({ code: 'E_REF_CONFLICT', data: { expected: base } });
      }
      expect(await t.readRef(ref)).toBe(values[winners[0]]);
    });

    describe('hostile input', () => {
      it('getToFile takes no more and no fewer bytes than the index gives the object', async () => {
        const { t } = await remote();
        const p = makePack(10_000);
        await t.put(p.key, { bytes: p.bytes });
        for (const size of [9_999, 10_001, 0]) {
          const dest = path.join(scratch, `sized-${size}.pack`);
          await expect(t.getToFile(p.key, dest, { size }), String(size)).rejects.toMatchObject({ code: 'E_REMOTE' });
          await expect(fs.stat(dest)).rejects.toThrow();
        }
        const dest = path.join(scratch, 'sized-ok.pack');
        await t.getToFile(p.key, dest, { size: 10_000 });
        expect((await fs.readFile(dest)).equals(Buffer.from(p.bytes))).toBe(true);
      });

      it('a listing gives every size as a non-negative integer', async () => {
        const { t } = await remote();
        for (const o of [makePack(3000), makeIndex(), makeMeta()]) await t.put(o.key, { bytes: o.bytes });
        for (const k of await t.list('objects/')) expect(Number.isSafeInteger(k.size) && k.size >= 0, k.key).toBe(true);
      });

      if (options.flatRefsReason) {
        it.skip(`refs clashing as file and folder: skipped, ${options.flatRefsReason}`, () => undefined);
      } else {
        it('refs that would clash as file and folder are refused with E_REF_CONFLICT, either order', async () => {
          const { t } = await remote();
          await t.casRef('refs/heads/fd', null, commitId());
          await expect(t.casRef('refs/heads/fd/sub', null, commitId())).rejects.toMatchObject({ code: 'E_REF_CONFLICT' });
          await t.casRef('refs/heads/dir/sub', null, commitId());
          await expect(t.casRef('refs/heads/dir', null, commitId())).rejects.toMatchObject({ code: 'E_REF_CONFLICT' });
          expect(await t.readRef('refs/heads/fd/sub')).toBeNull();
          expect(await t.readRef('refs/heads/dir')).toBeNull();
        });
      }

      it('refs that are not one commit id are E_CORRUPT, and a compare-and-swap does not write over them', async () => {
        const { t, fixture } = await remote();
        const id = commitId();
        const junk: [string, Uint8Array][] = [
          ['text', Buffer.from('hello\n')],
          ['empty', Buffer.alloc(0)],
          ['two ids', Buffer.from(`${id}\n${id}\n`)],
          ['upper case', Buffer.from(`${id.toUpperCase()}\n`)],
          ['id and more', Buffer.from(`${id}x\n`)],
          ['oversized', Buffer.alloc(5000, 0x61)],
        ];
        for (const [what, bytes] of junk) {
          const ref = `refs/heads/junk-${what.replace(/ /g, '-')}`;
          await fixture.plant(ref, bytes);
          await expect(t.readRef(ref), what).rejects.toMatchObject({ code: 'E_CORRUPT' });
          await expect(t.casRef(ref, null, commitId()), what).rejects.toMatchObject({ code: 'E_CORRUPT' });
          await expect(t.casRef(ref, id, commitId()), what).rejects.toMatchObject({ code: 'E_CORRUPT' });
          await expect(t.get(ref), what).rejects.toMatchObject({ code: expect.stringMatching(/^E_(CORRUPT|REMOTE)$/) });
          expect(await t.stat(ref), what).toMatchObject({ key: ref, size: bytes.byteLength });
        }
        expect(await t.readFile('logs/refs/heads/junk-text')).toBeUndefined();
      });

      it('a listing holds only store keys under its prefix, whatever else lies in the store', async () => {
        const { t, fixture } = await remote();
        const p = makePack(1000);
        const other = makePack(10).key.slice(14, 78);
        await t.put(p.key, { bytes: p.bytes });
        for (const junk of [
          'objects/packs/zz.pack',
          `objects/packs/${other}.pack.part`,
          `objects/packs/.${other}.pack`,
          `objects/packs/${other}.pack/inside`,
          `objects/index/${other}.pack`,
          'objects/meta/ab/short',
          `objects/meta/${other}`,
          'refs/heads/.hidden',
          'refs/heads/x.lock',
          'refs/other/x',
          'tmp/x',
          'locks/gc.lock.stale',
          'pruned/not-an-id',
          'logs/refs/other/x',
          'config.local',
          'HEAD.lock',
          'x',
        ]) {
          await fixture.plant(junk, Buffer.from('junk'));
        }
        expect((await t.list('')).map(({ key, size }) => ({ key, size }))).toEqual([{ key: p.key, size: 1000 }]);
        expect((await t.list('objects/packs/')).map(({ key, size }) => ({ key, size }))).toEqual([{ key: p.key, size: 1000 }]);
        for (const prefix of ['refs/', 'objects/meta/', 'objects/index/', 'pruned/', 'logs/', 'tmp/', 'locks/']) {
          expect(await t.list(prefix), prefix).toEqual([]);
        }
        // files that are not the store's cannot be read through it at all
        for (const key of ['config.local', 'tmp/x', 'locks/gc.lock.stale', 'HEAD.lock', 'pruned/not-an-id']) {
          await expect(t.readFile(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        }
      });

      it('store files larger than they may be are refused, not read whole', async () => {
        const { t, fixture } = await remote();
        const id = commitId();
        for (const key of ['config', 'HEAD', markKey(id)]) {
          await fixture.plant(key, Buffer.alloc(STORE_FILE_MAX + 1, 0x20));
          await expect(t.readFile(key), key).rejects.toMatchObject({ code: 'E_REMOTE' });
        }
      });
    });

    describe('store files', () => {
      it('config, HEAD and marks are read and replaced whole; marks are listed and deleted', async () => {
        const { t, another } = await remote();
        const id = commitId();
        for (const key of ['config', 'HEAD', markKey(id)]) expect(await t.readFile(key), key).toBeUndefined();
        const config = Buffer.from('{\n  "version": 1\n}\n');
        await t.writeFile('config', config);
        await t.writeFile('HEAD', Buffer.from('ref: refs/heads/main\n'));
        await t.writeFile(markKey(id), Buffer.from('{"time":1,"reason":"keep last 3"}\n'));
        const u = await another();
        expect(Buffer.from((await u.readFile('config'))!).equals(config)).toBe(true);
        await t.writeFile('HEAD', Buffer.from(`${id}\n`));
        expect(Buffer.from((await u.readFile('HEAD'))!).toString()).toBe(`${id}\n`);
        expect(await u.stat('config')).toMatchObject({ key: 'config', size: config.byteLength });
        expect(await u.stat(markKey(commitId()))).toBeUndefined();
        expect((await u.list('pruned/')).map(({ key, size }) => ({ key, size }))).toEqual([{ key: markKey(id), size: 34 }]);
        expect((await u.list('')).map((k) => k.key)).toEqual(['HEAD', 'config', markKey(id)]);
        // an empty file is a file
        await t.writeFile('config', new Uint8Array(0));
        expect((await u.readFile('config'))?.byteLength).toBe(0);
        await t.delete(markKey(id));
        expect(await u.readFile(markKey(id))).toBeUndefined();
        await t.delete(markKey(id));
        expect(await u.list('pruned/')).toEqual([]);
      });

      it('refuses what is not a store file, and writes no reflog, ref or object through writeFile', async () => {
        const { t } = await remote();
        const p = makePack();
        const bad = ['../config', '/config', 'config/', 'config/x', 'Config', 'HEAD.lock', 'pruned/xyz', `pruned/${commitId()}/x`, 'logs/../config', 'logs/refs/heads/../../x', 'logs/HEAD', 'logs/', 'tmp/x', 'locks/gc.lock', 'config.local', ''];
        for (const key of bad) {
          await expect(t.readFile(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
          await expect(t.writeFile(key, Buffer.from('x')), key).rejects.toMatchObject({ code: 'E_USAGE' });
          await expect(t.delete(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        }
        for (const key of ['logs/refs/heads/main', 'refs/heads/main', p.key]) {
          await expect(t.writeFile(key, Buffer.from(`${commitId()}\n`)), key).rejects.toMatchObject({ code: 'E_USAGE' });
        }
        for (const key of ['config', 'HEAD', 'logs/refs/heads/main', 'refs/heads/main']) {
          await expect(t.delete(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        }
        expect(await t.list('')).toEqual([]);
      });
    });

    describe('reflog', () => {
      it('casRef with an entry appends one line per move, read back at logs/<ref>', async () => {
        const { t, another } = await remote();
        const [a, b] = [commitId(), commitId()];
        const ref = 'refs/heads/main';
        await t.casRef(ref, null, a, { time: 1000, reason: 'commit: first' });
        await t.casRef(ref, a, b, { time: 2000, reason: 'commit:\tsecond  line\nwith  breaks' });
        // without an entry, or refused: nothing appended
        await t.casRef('refs/heads/quiet', null, a);
        await expect(t.casRef(ref, a, commitId(), { time: 3000, reason: 'lost race' })).rejects.toMatchObject({ code: 'E_REF_CONFLICT' });
        await t.casRef('refs/tags/v1', null, b, { time: 4000, reason: 'tag: v1 — première ✓' });
        await t.casRef(ref, b, null, { time: 5000, reason: 'branch -d main' });
        const u = await another();
        const log = parseReflog(Buffer.from((await u.readFile('logs/refs/heads/main'))!).toString('utf8'));
        expect(log).toEqual([
          { old: null, next: a, time: 1000, reason: 'commit: first' },
          { old: a, next: b, time: 2000, reason: 'commit: second line with breaks' },
          { old: b, next: null, time: 5000, reason: 'branch -d main' },
        ]);
        expect(parseReflog(Buffer.from((await u.readFile('logs/refs/tags/v1'))!).toString('utf8'))).toEqual([
          { old: null, next: b, time: 4000, reason: 'tag: v1 — première ✓' },
        ]);
        expect(await u.readFile('logs/refs/heads/quiet')).toBeUndefined();
        expect((await u.list('logs/')).map((k) => k.key)).toEqual(['logs/refs/heads/main', 'logs/refs/tags/v1']);
      });

      raceIt('of several writers racing to move a ref, the reflog holds exactly the winner', async () => {
        const { t, another } = await remote();
        const ref = 'refs/heads/main';
        const base = commitId();
        await t.casRef(ref, null, base, { time: 1, reason: 'base' });
        const clients = await Promise.all(Array.from({ length: 4 }, () => another()));
        const values = clients.map(() => commitId());
        const results = await Promise.allSettled(clients.map((c, i) => c.casRef(ref, base, values[i], { time: 2, reason: `writer ${i}` })));
        const winner = results.findIndex((r) => r.status === 'fulfilled');
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        const log = parseReflog(Buffer.from((await t.readFile('logs/refs/heads/main'))!).toString('utf8'));
        expect(log.map((l) => l.reason)).toEqual(['base', `writer ${winner}`]);
        expect(log[1]).toMatchObject({ old: base, next: values[winner] });
      });
    });

    describe('ranged readers', () => {
      it('read ranges of one object; past the end is E_REMOTE, a missing object E_NOT_FOUND', async () => {
        const { t } = await remote();
        const p = makePack(50_000);
        await t.put(p.key, { bytes: p.bytes });
        const r = await t.openRanges(p.key);
        try {
          for (const [offset, length] of [
            [0, 1],
            [49_999, 1],
            [1234, 20_000],
            [0, 50_000],
            [50_000, 0],
            [7, 0],
          ]) {
            const got = await r.read(offset, length);
            expect(Buffer.from(got).equals(Buffer.from(p.bytes.subarray(offset, offset + length))), `${offset}+${length}`).toBe(true);
          }
          for (const [offset, length] of [
            [49_990, 20],
            [50_000, 1],
            [60_000, 0],
            [60_000, 10],
          ]) {
            await expect(r.read(offset, length), `${offset}+${length}`).rejects.toMatchObject({ code: 'E_REMOTE' });
          }
          await expect(r.read(-1, 4)).rejects.toMatchObject({ code: 'E_USAGE' });
          await expect(r.read(0, 1.5)).rejects.toMatchObject({ code: 'E_USAGE' });
          // the reader still works after the refusals
          expect(Buffer.from(await r.read(10, 10)).equals(Buffer.from(p.bytes.subarray(10, 20)))).toBe(true);
        } finally {
          await r.close();
        }
        await expect(t.openRanges(makePack().key)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
        await expect(t.openRanges('config')).rejects.toMatchObject({ code: 'E_USAGE' });
      });
    });

    describe('locks', () => {
      it('shared locks coexist; each is released', async () => {
        const { t, another } = await remote();
        const u = await another();
        const [a, b] = await Promise.all([t.lockShared('test'), u.lockShared('test')]);
        a.check();
        b.check();
        await a.release();
        await b.release();
        // released: gc may run at once
        const x = await (await another({ lockWaitMs: 5000 })).lockExclusive('gc');
        x.check();
        await x.release();
      });

      it('the exclusive lock waits for shared ones, and shared ones wait for it', async () => {
        const { t, another } = await remote();
        const quick = await another({ lockWaitMs: 300 });
        const a = await t.lockShared('commit');
        await expect(quick.lockExclusive('gc')).rejects.toMatchObject({ code: 'E_LOCKED' });
        a.check();
        await a.release();
        const x = await quick.lockExclusive('gc');
        await expect(quick.lockShared('commit')).rejects.toMatchObject({ code: 'E_LOCKED' });
        await expect((await another({ lockWaitMs: 300 })).lockExclusive('prune')).rejects.toMatchObject({ code: 'E_LOCKED' });
        x.check();
        await x.release();
        const b = await quick.lockShared('commit');
        b.check();
        await b.release();
      });

      it('a gc waiting for commits turns new ones away, and runs once the old ones finish', async () => {
        const { t, another } = await remote();
        const a = await t.lockShared('commit');
        const gcSide = await another({ lockWaitMs: 60_000 });
        let granted: RemoteLock | undefined;
        const pending = gcSide.lockExclusive('gc').then((l) => (granted = l));
        const late = await another({ lockWaitMs: 100 });
        // once gc has announced itself, a new commit is turned away rather than slipping in
        await eventually('a new sharer is turned away', 20_000, () =>
          late.lockShared('commit').then(
            async (l) => (await l.release(), false),
            (e: unknown) => (expect(e).toMatchObject({ code: 'E_LOCKED' }), true),
          ),
        );
        expect(granted).toBeUndefined();
        await a.release();
        const x = await pending;
        x.check();
        await x.release();
      });

      it('a lock broken behind its holder\'s back makes check() throw E_LOCKED', async () => {
        const { t, fixture } = await remote();
        const s = await t.lockShared('push');
        s.check();
        await fixture.breakLocks();
        await eventually('the shared holder learns it lost its lock', 20_000 + fixture.lapseMs, () => throwsLocked(s));
        await s.release();
        const x = await t.lockExclusive('gc');
        x.check();
        await fixture.breakLocks();
        await eventually('the exclusive holder learns it lost its lock', 20_000 + fixture.lapseMs, () => throwsLocked(x));
        await x.release();
        // released locks throw too: nothing is protected any more
        const y = await t.lockShared('push');
        await y.release();
        expect(throwsLocked(y)).toBe(true);
      });

      it('a shared lock whose holder vanished lapses, and gc then runs', async () => {
        const { fixture, another } = await remote();
        await fixture.abandonSharedLock();
        const gcSide = await another({ lockWaitMs: fixture.lapseMs + 30_000 });
        const x = await gcSide.lockExclusive('gc');
        x.check();
        await x.release();
      });
    });

    describe('the retry wrapper', () => {
      async function wrapped(retries = 2) {
        const { t, fixture } = await remote();
        const faulty = new FaultyBackend(t);
        return { faulty, r: new RetryingBackend(faulty, { retries, delayMs: 1 }), fixture };
      }

      it('retries transient failures of every idempotent operation, then succeeds', async () => {
        const { faulty, r } = await wrapped();
        const p = makePack(3000);
        const id = commitId();
        const dir = path.join(scratch, randomBytes(4).toString('hex'));
        const steps: [Parameters<FaultyBackend['fail']>[0], () => Promise<unknown>][] = [
          ['put', () => r.put(p.key, { bytes: p.bytes })],
          ['stat', async () => expect(await r.stat(p.key)).toMatchObject({ key: p.key, size: 3000 })],
          ['list', async () => expect((await r.list('objects/')).map((k) => k.key)).toEqual([p.key])],
          ['get', async () => expect(Buffer.from(await r.get(p.key)).equals(Buffer.from(p.bytes))).toBe(true)],
          ['getToFile', () => r.getToFile(p.key, path.join(dir, 'p.pack'))],
          ['openRanges', () => r.openRanges(p.key).then((x) => x.close())],
          ['writeFile', () => r.writeFile('config', Buffer.from('{}\n'))],
          ['readFile', async () => expect(Buffer.from((await r.readFile('config'))!).toString()).toBe('{}\n')],
          ['casRef', () => r.casRef('refs/heads/main', null, id)],
          ['readRef', async () => expect(await r.readRef('refs/heads/main')).toBe(id)],
          ['delete', () => r.delete(p.key)],
        ];
        for (const [op, run] of steps) {
          faulty.fail(op, 2);
          const before = faulty.calls[op] ?? 0;
          await run();
          expect((faulty.calls[op] ?? 0) - before, op).toBe(3);
        }
        expect(await r.stat(p.key)).toBeUndefined();
        // a stall is transient too, and so is a read of a ranged reader
        const q = makePack(2000);
        await r.put(q.key, { bytes: q.bytes });
        const reader = await r.openRanges(q.key);
        faulty.fail('read', 2, { error: () => new StallError('injected stall') });
        expect(Buffer.from(await reader.read(5, 10)).equals(Buffer.from(q.bytes.subarray(5, 15)))).toBe(true);
        expect(faulty.calls.read).toBe(3);
        await reader.close();
        faulty.fail('lockShared', 1);
        const l = await r.lockShared('push');
        l.check();
        await l.release();
      });

      it('a ref update whose answer was lost counts as done, and its reflog line is written once', async () => {
        const { faulty, r } = await wrapped();
        const [a, b] = [commitId(), commitId()];
        faulty.fail('casRef', 1, { when: 'after' });
        await r.casRef('refs/heads/main', null, a, { time: 1, reason: 'create' });
        faulty.fail('casRef', 2, { when: 'after' });
        await r.casRef('refs/heads/main', a, b, { time: 2, reason: 'advance' });
        faulty.fail('casRef', 1, { when: 'after' });
        await r.casRef('refs/heads/main', b, null, { time: 3, reason: 'delete' });
        expect(await r.readRef('refs/heads/main')).toBeNull();
        const log = parseReflog(Buffer.from((await r.readFile('logs/refs/heads/main'))!).toString('utf8'));
        expect(log.map((l) => l.reason)).toEqual(['create', 'advance', 'delete']);
        // a real conflict is not mistaken for a lost answer, and is not retried
        await r.casRef('refs/heads/main', null, a);
        const before = faulty.calls.casRef!;
        await expect(r.casRef('refs/heads/main', b, commitId())).rejects.toMatchObject({ code: 'E_REF_CONFLICT', data: { actual: a } });
        expect(faulty.calls.casRef! - before).toBe(1);
      });

      it('gives up after its retries with the last error, and never retries what is not transient', async () => {
        const { faulty, r } = await wrapped(2);
        const p = makePack();
        faulty.fail('stat', 3);
        await expect(r.stat(p.key)).rejects.toMatchObject({ code: 'E_REMOTE', data: { transient: true } });
        expect(faulty.calls.stat).toBe(3);
        faulty.fail('get', 1, { error: permanent });
        await expect(r.get(p.key)).rejects.toMatchObject({ code: 'E_CORRUPT' });
        expect(faulty.calls.get).toBe(1);
        // the backend's own refusals pass straight through
        await expect(r.get(p.key)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
        await expect(r.put('../x', { bytes: p.bytes })).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(r.put(p.key, { bytes: makePack().bytes })).rejects.toMatchObject({ code: 'E_CORRUPT' });
        expect(faulty.calls.get).toBe(2);
        expect(faulty.calls.put).toBe(2);
      });
    });
  });
}
