/**
 * Store.lockShared taken again while its Store already holds it joins the lock held. Two shared
 * locks of one process would otherwise deadlock with a gc that arrives between them: gc marks
 * itself and waits for the first, the second waits for gc.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/store.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function newStore(): Promise<{ dir: string; store: Store }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-lockshared-'));
  dirs.push(dir);
  return { dir, store: await Store.create(dir) };
}

const sharedFlags = async (dir: string) => (await readdir(path.join(dir, 'locks'), { recursive: true })).filter((f) => /shared/.test(String(f)) && /\.lock$/.test(String(f)));

describe('Store.lockShared', () => {
  it('a second holder joins the first while a gc waits, and gc goes on once both are released', async () => {
    const { dir, store } = await newStore();
    const outer = await store.lockShared('commit');
    const flags = (await sharedFlags(dir)).length;
    expect(flags).toBeGreaterThan(0);
    // gc, from another Store of the same folder (another process would do the same), waits
    const gcStore = await Store.open(dir);
    let gcHeld = false;
    const gc = gcStore.lockExclusive({ timeoutMs: 30_000, pollMs: 20 }).then((l) => {
      gcHeld = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(gcHeld).toBe(false);
    // the inner lock does not wait behind the waiting gc: it joins the one held, adding no flag
    const inner = await Promise.race([store.lockShared('merge'), new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 5_000))]);
    expect(inner).not.toBe('stuck');
    expect((await sharedFlags(dir)).length).toBe(flags);
    if (inner === 'stuck') return;
    inner.check();
    await inner.release();
    await new Promise((r) => setTimeout(r, 200));
    // the outer holder still holds it
    expect(gcHeld).toBe(false);
    await outer.release();
    const lock = await gc;
    expect(gcHeld).toBe(true);
    await lock.release();
  });

  it('after the last release, a new holder takes a lock of its own; releasing twice is harmless', async () => {
    const { dir, store } = await newStore();
    const a = await store.lockShared('checkout');
    await a.release();
    await a.release();
    expect(await sharedFlags(dir)).toEqual([]);
    const b = await store.lockShared('checkout');
    expect((await sharedFlags(dir)).length).toBeGreaterThan(0);
    await b.release();
    expect(await sharedFlags(dir)).toEqual([]);
  });
});
