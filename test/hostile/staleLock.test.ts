/**
 * A gc lock left behind by a killed gc whose pid now belongs to another live process must not
 * block a commit: the lock records its owner's start time and is stale when the pid's start time
 * differs; a lock of another host, when it has not been renewed within its lease. A lock of this
 * host's live owner is held however old it is (a stopped process keeps it). A lock that is really held makes
 * the commit wait, and the wait says what it waits for.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireLock, isStale, LOCK_LEASE_MS, processStart } from '../../src/backend/lockFile.js';
import { liveSharers } from '../../src/backend/storeLocks.js';
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

  it('a lock of this host past its lease is still held while its owner lives (a stopped process keeps it); it is stale once the owner is gone', async () => {
    const dir = await tempDir('ckpt-locklease-');
    const f = path.join(dir, 'z.lock');
    const old = new Date(Date.now() - 2 * LOCK_LEASE_MS);
    await fs.writeFile(f, JSON.stringify({ pid: process.pid, host: os.hostname(), time: old.getTime(), start: myStart }));
    await fs.utimes(f, old, old);
    expect(await isStale(f), 'a live same-host owner lost its lock to the lease').toBe(false);
    // the same record from a process that started at another time: the pid was reused
    await fs.writeFile(f, JSON.stringify({ pid: process.pid, host: os.hostname(), time: old.getTime(), start: (myStart as number) - 1 }));
    await fs.utimes(f, old, old);
    expect(await isStale(f)).toBe(true);
  });

  it('a SIGSTOPped commit keeps its shared lock past the lease, so gc waits for it', async () => {
    const sharedDir = path.join(repo, '.ckpt', 'locks', 'shared');
    await fs.mkdir(sharedDir, { recursive: true });
    const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      sleeper.kill('SIGSTOP');
      const f = path.join(sharedDir, `${sleeper.pid}-abcdef.lock`);
      const old = new Date(Date.now() - 2 * LOCK_LEASE_MS);
      await fs.writeFile(f, JSON.stringify({ pid: sleeper.pid, host: os.hostname(), time: old.getTime(), start: processStart(sleeper.pid!), purpose: 'commit' }));
      await fs.utimes(f, old, old);
      expect(await liveSharers(path.join(repo, '.ckpt', 'locks'))).toHaveLength(1);
      await fs.access(f);
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
      expect(await liveSharers(path.join(repo, '.ckpt', 'locks'))).toHaveLength(0);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('release removes the lock file only while it holds our own record', async () => {
    const dir = await tempDir('ckpt-lockrel-');
    const f = path.join(dir, 'r.lock');
    const lock = await acquireLock(f);
    // our lock was broken and another owner took the path
    const theirs = JSON.stringify({ pid: 1, host: 'some-other-host', time: Date.now() });
    await fs.writeFile(f, theirs);
    await lock.release();
    expect(await fs.readFile(f, 'utf8')).toBe(theirs);
    const mine = await acquireLock(path.join(dir, 's.lock'));
    await mine.release();
    await expect(fs.access(path.join(dir, 's.lock'))).rejects.toThrow();
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
