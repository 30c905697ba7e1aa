/**
 * A watcher's snapshots live in the store's tmp/, which hosts sharing the store share too. A
 * snapshot names its host, and the clean-up at start reaps only this host's snapshots whose
 * watcher died: another host's live snapshot (its pid means nothing here) is left alone.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { linkSnapshot, removeStaleSnapshots } from '../../src/watch/linkSnapshot.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';

afterAll(cleanupTempDirs);

async function deadPid(): Promise<number> {
  const p = spawn('true', { stdio: 'ignore' });
  await new Promise((r) => p.once('exit', r));
  return p.pid!;
}

describe('watch snapshots on a store shared between hosts', () => {
  it('a snapshot names its host; only this host\'s dead watchers\' snapshots are reaped', async () => {
    const tmp = await tempDir('ckpt-snaphost-');
    const src = path.join(tmp, 'src.bin');
    await fs.writeFile(src, 'weights');
    const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_');
    const snap = (await linkSnapshot({ path: src, folder: false, files: [{ path: src }] } as never, path.join(tmp, 'tmp')))!;
    expect(path.basename(path.dirname(snap.path))).toMatch(new RegExp(`^watch-${host.replace(/\./g, '\\.')}-${process.pid}-[0-9a-f]+$`));

    const dead = await deadPid();
    const dir = path.join(tmp, 'tmp');
    const names = {
      otherHostSamePidAsADeadOne: `watch-other-host.example-${dead}-0a0a0a0a`,
      mineDead: `watch-${host}-${dead}-0b0b0b0b`,
      mineLive: `watch-${host}-${process.pid}-0c0c0c0c`,
      // the old name held no host: it may be another host's, so it is never presumed dead
      noHost: `watch-${dead}-0d0d0d0d`,
    };
    for (const n of Object.values(names)) await fs.mkdir(path.join(dir, n, 'x'), { recursive: true });
    await removeStaleSnapshots(dir);
    const left = await fs.readdir(dir);
    expect(left).toContain(names.otherHostSamePidAsADeadOne);
    expect(left).toContain(names.mineLive);
    expect(left).toContain(names.noHost);
    expect(left).not.toContain(names.mineDead);
    expect(left).toContain(path.basename(path.dirname(snap.path)));
    await snap.dispose();
  });
});
