/**
 * Acceptance 4: two clients push to one branch at once. The remote ref changes only by
 * compare-and-swap, so exactly one wins; the other is told its push is not a fast-forward, and
 * the remote passes a consistency check at the winner's commit.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, newRepo, start, tempDir } from './helpers.js';
import { KINDS, checkRemote, model, runJson, runOk, startRemote, type TestRemote } from './remoteHelpers.js';

afterAll(cleanupTempDirs);

const ROUNDS = 3;

describe.each(KINDS)('racing pushes over %s', (kind) => {
  let remote: TestRemote;
  beforeAll(async () => {
    remote = await startRemote(kind);
  });
  afterAll(async () => {
    await remote?.stop();
  });

  it('one wins, the other gets a non-fast-forward error, the remote stays consistent', async () => {
    const env = remote.env;
    const url = remote.newUrl();
    const a = await newRepo('--chunk-size', '65536');
    await fs.writeFile(path.join(a, 'model.safetensors'), model([1, 2, 3, 4], 65536));
    await runOk(a, env, 'commit', 'model.safetensors', '-m', 'base', '--no-compress');
    await runOk(a, env, 'remote', 'add', 'origin', url, ...remote.args);
    await runOk(a, env, 'push');
    const parent = await tempDir('ckpt-race-');
    const clients = ['c1', 'c2'].map((n) => path.join(parent, n));
    for (const c of clients) await runOk(parent, env, 'clone', url, path.basename(c), ...remote.args);

    for (let round = 0; round < ROUNDS; round++) {
      const ids: string[] = [];
      for (const [i, c] of clients.entries()) {
        await runOk(c, env, 'pull');
        await fs.writeFile(path.join(c, 'model.safetensors'), model([round * 10 + i + 100, 2, 3, 4], 65536));
        ids.push((await runJson(c, env, 'commit', 'model.safetensors', '-m', `round ${round} by c${i}`, '--no-compress')).id);
      }
      const results = await Promise.all(clients.map((c) => start(c, ['push', '--json'], env).done));
      const codes = results.map((r) => r.code).sort();
      expect(codes, results.map((r) => r.stderr).join('\n')).toEqual([0, 6]);
      const loser = results.find((r) => r.code === 6)!;
      expect(JSON.parse(loser.stdout).error.code).toBe('E_NON_FAST_FORWARD');
      const winner = ids[results.findIndex((r) => r.code === 0)];
      expect(await checkRemote(remote, url)).toEqual({ 'refs/heads/main': winner });
      // the loser's pull is refused too: histories diverged, nothing is lost
      const loserDir = clients[results.findIndex((r) => r.code === 6)];
      const pl = await start(loserDir, ['pull', '--json'], env).done;
      expect(JSON.parse(pl.stdout).error.code).toBe('E_NON_FAST_FORWARD');
      // the loser starts over from the winner's commit for the next round (ckpt has no reset)
      const winnerId = (await runJson(loserDir, env, 'log', 'origin/main', '-n', '1'))[0].id;
      await fs.writeFile(path.join(loserDir, '.ckpt', 'refs', 'heads', 'main'), `${winnerId}\n`);
    }
  }, 300_000);
});
