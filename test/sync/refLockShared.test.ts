/**
 * Issue 11, acceptance 4: the lock and reflog of a ref are the same files whoever moves it. A
 * push into a working repository waits while the ref's lock is held (the lock a local commit
 * takes, `locks/refs%heads%main.lock`), moves the branch once it is free, and appends its entry
 * to the same reflog a local commit writes (`logs/refs/heads/main`).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { acquireLock } from '../../src/backend/lockFile.js';
import { openBackend } from '../../src/backend/openBackend.js';
import { commitFiles } from '../../src/repo/commit.js';
import { Repository } from '../../src/repo/repository.js';
import { clone } from '../../src/sync/clone.js';
import { push } from '../../src/sync/push.js';

let root: string;
beforeAll(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'ckpt-reflock-'));
});
afterAll(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

async function commitBytes(repo: Repository, name: string, bytes: Buffer, message: string): Promise<string> {
  const file = path.join(repo.root, name);
  await fsp.writeFile(file, bytes);
  return (await commitFiles(repo, [file], { message })).id;
}

describe('a ref has one lock and one reflog, whoever moves it', () => {
  it('a push into a working repository waits for the ref lock a local commit takes, then writes the reflog', async () => {
    const targetDir = path.join(root, 'target');
    await fsp.mkdir(targetDir);
    const target = await Repository.init(targetDir);
    const first = await commitBytes(target, 'a.bin', Buffer.alloc(9000, 1), 'first, committed locally');
    const pusher = await Repository.open((await clone(targetDir, path.join(root, 'pusher'), { noCheckout: true })).root);
    const second = await commitBytes(pusher, 'b.bin', Buffer.alloc(7000, 2), 'second, pushed');

    // the lock a local commit of the target takes to move main (docs/format.md, locks)
    const lockFile = path.join(target.store.locksDir, 'refs%heads%main.lock');
    const held = await acquireLock(lockFile);
    const open = vi.spyOn(fsp, 'open');
    let settled = false;
    try {
      const pushing = push(pusher, await openBackend(targetDir), { refs: ['main'] }).finally(() => (settled = true));
      // the push has everything in place and now finds the branch's lock taken
      await vi.waitFor(() => expect(open.mock.calls.some(([p, flags]) => p === lockFile && flags === 'wx')).toBe(true), { timeout: 120_000, interval: 20 });
      expect(settled).toBe(false);
      expect(await target.store.refs.read('refs/heads/main')).toBe(first);
      expect(await target.store.meta.has(second)).toBe(true);
      await held.release();
      const r = await pushing;
      expect(r.updates).toEqual([{ ref: 'refs/heads/main', old: first, new: second, status: 'fast-forward' }]);
    } finally {
      open.mockRestore();
      await held.release();
    }
    expect(await target.store.refs.read('refs/heads/main')).toBe(second);

    // a local commit after the push appends to the same reflog, under the same lock
    const third = await commitBytes(target, 'c.bin', Buffer.alloc(5000, 3), 'third, committed locally');
    const log = await target.store.refs.log('refs/heads/main');
    expect(log.map((e) => [e.old, e.next])).toEqual([
      [null, first],
      [first, second],
      [second, third],
    ]);
    expect(log[0].reason).toMatch(/^commit: first/);
    expect(log[1].reason).toBe(`push by ${pusher.author}`);
    expect(log[2].reason).toMatch(/^commit: third/);
    // one lock file name for the ref, whoever took it, and none left behind
    expect((await fsp.readdir(target.store.locksDir)).filter((n) => n.endsWith('.lock'))).toEqual([]);
  }, 180_000);
});
