/**
 * The small remote-side findings: credentials born private, odd URLs and targets refused
 * cleanly, and a clone killed midway that does not block the next one.
 */
import { constants as fsConstants, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { clone } from '../../src/sync/clone.js';
import { addRemote } from '../../src/sync/remoteConfig.js';
import { Repository } from '../../src/repo/repository.js';
import { ckpt, start } from '../e2e/helpers.js';
import { makeSource, startHostileServer } from './craftedRemote.js';

let base: string;
beforeAll(async () => {
  base = await fsp.mkdtemp(path.join(os.tmpdir(), 'ckpt-remote-low-'));
});
afterAll(async () => {
  await fsp.rm(base, { recursive: true, force: true });
});

describe('remote low items', () => {
  it('config.local (credentials) is created with mode 0600, not chmodded afterwards', async () => {
    const dir = path.join(base, 'creds');
    await fsp.mkdir(dir);
    const repo = await Repository.init(dir);
    const open = vi.spyOn(fsp, 'open');
    const chmod = vi.spyOn(fsp, 'chmod');
    try {
      await addRemote(repo, 'origin', { url: path.join(base, 'remote') }, { token: 'secret' });
      // the opens that create config.local's temporary file (reads of config.local open it too)
      const creates = (flags: unknown) => (typeof flags === 'string' ? /[wax]/.test(flags) : typeof flags === 'number' && (flags & fsConstants.O_CREAT) !== 0);
      const created = open.mock.calls.filter(([p, flags]) => path.basename(String(p)).startsWith('config.local') && creates(flags));
      expect(created.length).toBeGreaterThan(0);
      for (const [, , mode] of created) expect(mode).toBe(0o600);
      expect(chmod).not.toHaveBeenCalled();
    } finally {
      open.mockRestore();
      chmod.mockRestore();
    }
    expect((await fsp.stat(path.join(dir, '.ckpt', 'config.local'))).mode & 0o777).toBe(0o600);
  });

  it('`remote add z http://256.0.0.1/x` is a usage error, not a crash', async () => {
    const dir = path.join(base, 'badurl');
    await fsp.mkdir(dir);
    const repo = await Repository.init(dir);
    await expect(addRemote(repo, 'z', { url: 'http://256.0.0.1/x' })).rejects.toMatchObject({ code: 'E_USAGE' });
    const r = await ckpt(dir, 'remote', 'add', 'z', 'http://256.0.0.1/x');
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('clone into an existing file is a clean error that leaves the file alone', async () => {
    const src = await makeSource(path.join(base, 'src-file'));
    const file = path.join(base, 'a-file');
    await fsp.writeFile(file, 'keep me');
    await expect(clone(path.dirname(src.storeDir), file)).rejects.toMatchObject({ code: 'E_EXISTS' });
    const r = await ckpt(base, 'clone', path.dirname(src.storeDir), file);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(await fsp.readFile(file, 'utf8')).toBe('keep me');
  });

  it('a clone killed midway leaves nothing that stops the re-run', async () => {
    const src = await makeSource(path.join(base, 'src-kill'));
    // the pack arrives one byte at a time: the clone is surely in the middle when it is killed
    const hostile = await startHostileServer(src.storeDir, { kind: 'pack', how: 'drip', dripMs: 20 });
    const parent = path.join(base, 'kill');
    await fsp.mkdir(parent);
    try {
      const run = start(parent, ['clone', hostile.url, 'c'], { CKPT_STALL_TIMEOUT: '30' });
      // wait until the clone has made its store, then kill it
      for (let i = 0; i < 200 && (await fsp.readdir(parent)).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      await new Promise((r) => setTimeout(r, 500));
      run.child.kill('SIGKILL');
      await run.done;
    } finally {
      await hostile.close();
    }
    const again = await ckpt(parent, 'clone', path.dirname(src.storeDir), 'c');
    expect(again.code, again.stderr).toBe(0);
    expect((await fsp.readFile(path.join(parent, 'c', 'model.bin'))).equals(src.bytes)).toBe(true);
    // the dead clone's work folder is gone too
    expect(await fsp.readdir(parent)).toEqual(['c']);
  });
});
