/**
 * The one conformance suite every transport runs (restic's backend tests, unstorage's driver
 * suite): the same keys, the same refusals, the same compare-and-swap outcome whatever moves
 * the bytes.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeCanonical } from '../../src/core/canonical.js';
import { objectId } from '../../src/core/objectId.js';
import { indexKey, metaKey, packKey } from '../../src/backend/objectKeys.js';
import type { Backend } from '../../src/backend/backend.js';

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

export interface RemoteFixture {
  /** A new client of this fixture's remote (each fixture is a fresh, empty remote). */
  open(): Promise<Backend>;
  /** Writes raw bytes under a key behind the transport's back, to test read-side checks. */
  plant(key: string, bytes: Uint8Array): Promise<void>;
}

export interface SuiteOptions {
  /** Why compare-and-swap cannot be tested against this server; the CAS race tests are skipped. */
  casSkipReason?: string;
  /** Why this remote allows a ref and a folder of refs under the same name (a flat key space). */
  flatRefsReason?: string;
}

export function transportSuite(name: string, makeRemote: () => Promise<RemoteFixture>, options: SuiteOptions = {}) {
  describe(`transport: ${name}`, () => {
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

    async function remote(): Promise<{ t: Backend; fixture: RemoteFixture; another(): Promise<Backend> }> {
      const fixture = await makeRemote();
      const another = async () => {
        const t = await fixture.open();
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
        await expect(t.stat(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(t.delete(key), key).rejects.toMatchObject({ code: 'E_USAGE' });
        await expect(t.getToFile(key, path.join(scratch, 'bad')), key).rejects.toMatchObject({ code: 'E_USAGE' });
      }
      for (const ref of ['refs/heads/../x', 'refs/other/origin/main', 'HEAD', '../refs/heads/x', p.key]) {
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

      it('the store lock a push holds, where the remote has one, is shared and released', async () => {
        const { t, another } = await remote();
        if (!t.lockShared) return;
        const u = await another();
        const [a, b] = await Promise.all([t.lockShared('test'), u.lockShared!('test')]);
        a.check?.();
        await a.release();
        await b.release();
      });
    });
  });
}
