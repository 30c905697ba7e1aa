/**
 * A gc lock left behind by a killed gc whose pid now belongs to another live process must not
 * block a commit: the lock records its owner's start time and is stale when the pid's start time
 * differs, or when it has not been renewed within its lease. A lock that is really held makes
 * the commit wait, and the wait says what it waits for.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireLock, isStale, LOCK_LEASE_MS, processStart } from '../../src/store/lockFile.js';
import { ckptOk, cleanupTempDirs, start, tempDir, writeBigSafetensors } from '../e2e/helpers.js';

let repo: string;
let gcLock: string;
const myStart = processStart(process.pid);

beforeAll(async () => {
  repo = await tempDir('ckpt-stalelock-');
  await writeBigSafetensors(path.join(repo, 'm.safetensors'), [{ name: 'w', count: 1000, seed: 4 }]);
  await ckptOk(repo, 'init', '-q');
  gcLock = path.join(repo, '.ckpt', 'locks', 'gc.lock');
});
afterAll(cleanupTempDirs);

/** Runs `ckpt commit`, killing it after `killAfterMs`; resolves with its exit and stderr. */
async function commit(killAfterMs: number, onStderr?: (all: string) => void) {
  await writeBigSafetensors(path.join(repo, 'm.safetensors'), [{ name: 'w', count: 1000, seed: Date.now() % 1000 }]);
  const run = start(repo, ['commit', 'm.safetensors', '-m', 'x']);
  let err = '';
  run.child.stderr!.on('data', (b: Buffer) => {
    err += b.toString('utf8');
    onStderr?.(err);
  });
  const timer = setTimeout(() => run.child.kill('SIGKILL'), killAfterMs);
  const r = await run.done;
  clearTimeout(timer);
  return { ...r, stderr: err };
}

describe('a stale gc lock is broken, a live one is waited for out loud', () => {
  it('this platform reports process start times', () => {
    expect(myStart).toBeTypeOf('number');
  });

  it('a lock naming a live pid that started at another time (a reused pid) does not block a commit', async () => {
    await fs.writeFile(gcLock, JSON.stringify({ pid: process.pid, host: os.hostname(), time: Date.now(), start: (myStart as number) - 1 }));
    const r = await commit(20_000);
    expect(r.signal, 'commit waited on a stale lock until it was killed').toBeNull();
    expect(r.code, r.stderr).toBe(0);
    await expect(fs.access(gcLock)).rejects.toThrow();
  });

  it('a lock past its lease (not renewed) is stale even when its pid is alive', async () => {
    await fs.writeFile(gcLock, JSON.stringify({ pid: process.pid, host: os.hostname(), time: Date.now() - 2 * LOCK_LEASE_MS }));
    const old = new Date(Date.now() - 2 * LOCK_LEASE_MS);
    await fs.utimes(gcLock, old, old);
    const r = await commit(20_000);
    expect(r.signal, 'commit waited on an expired lock until it was killed').toBeNull();
    expect(r.code, r.stderr).toBe(0);
  });

  it('a lock that is really held makes commit wait, saying for what, and the commit goes on once it is released', async () => {
    await fs.writeFile(gcLock, JSON.stringify({ pid: process.pid, host: os.hostname(), time: Date.now(), start: myStart }));
    let noticed = false;
    const done = commit(30_000, (all) => {
      if (!noticed && /waiting \d+ s for .*gc\.lock, held by pid \d+/.test(all)) {
        noticed = true;
        void fs.rm(gcLock, { force: true });
      }
    });
    const r = await done;
    expect(noticed, `no wait notice on stderr:\n${r.stderr}`).toBe(true);
    expect(r.code, r.stderr).toBe(0);
  });

  it('locks from another host: live while renewed, stale past the lease', async () => {
    const dir = await tempDir('ckpt-lockhost-');
    const f = path.join(dir, 'x.lock');
    await fs.writeFile(f, JSON.stringify({ pid: 1, host: 'some-other-host', time: Date.now() }));
    expect(await isStale(f)).toBe(false);
    const old = new Date(Date.now() - LOCK_LEASE_MS - 60_000);
    await fs.utimes(f, old, old);
    expect(await isStale(f)).toBe(true);
  });

  it('a lock records its owner start time, and is not stale while its owner lives', async () => {
    const dir = await tempDir('ckpt-lockown-');
    const f = path.join(dir, 'y.lock');
    const lock = await acquireLock(f);
    const owner = JSON.parse(await fs.readFile(f, 'utf8')) as { pid: number; start: number };
    expect(owner).toMatchObject({ pid: process.pid, start: myStart });
    expect(await isStale(f)).toBe(false);
    await lock.release();
  });
});
