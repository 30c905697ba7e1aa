/**
 * Transfer progress: bytes, rate and ETA on stderr, off a terminal only with --progress, and
 * never on stdout (a --json document stays one document).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TransferRate, humanSeconds } from '../../src/cli/output.js';
import { cleanupTempDirs, newRepo, tempDir } from '../e2e/helpers.js';
import { runIn } from '../e2e/inProcess.js';
import { model } from '../e2e/remoteHelpers.js';

afterAll(cleanupTempDirs);

describe('transfer progress', () => {
  it('gives the rate over the last seconds and the time left at it', () => {
    const r = new TransferRate(5000);
    const t0 = 1_000_000;
    r.add(0, t0);
    r.add(100 * 2 ** 20, t0 + 10_000); // 10 MiB/s over the first 10 s
    r.add(300 * 2 ** 20, t0 + 12_000); // then 100 MiB/s
    expect(r.describe(300 * 2 ** 20, 500 * 2 ** 20, t0 + 12_000)).toMatch(/^300(\.0)? MiB \/ 500(\.0)? MiB 60% 100(\.0)? MiB\/s ETA 2s$/);
    expect(humanSeconds(3725)).toBe('1h02m');
    expect(humanSeconds(61)).toBe('1m01s');
  });

  it('push --progress --json: progress lines on stderr, one JSON document on stdout', async () => {
    const a = await newRepo();
    await fs.writeFile(path.join(a, 'model.safetensors'), model([1, 2, 3, 4], 1 << 18));
    expect((await runIn(a, ['commit', 'model.safetensors', '-m', 'one'])).code).toBe(0);
    const remote = path.join(await tempDir('ckpt-progress-'), 'r');
    expect((await runIn(a, ['remote', 'add', 'origin', remote])).code).toBe(0);
    const quiet = await runIn(a, ['push', '--json']);
    expect(quiet.stderr).not.toMatch(/ETA/);
    await runIn(a, ['commit', 'model.safetensors', '-m', 'two']);
    await fs.writeFile(path.join(a, 'model.safetensors'), model([5, 6, 7, 8], 1 << 18));
    await runIn(a, ['commit', 'model.safetensors', '-m', 'three']);
    const r = await runIn(a, ['push', '--progress', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).updates[0].status).toBe('fast-forward');
    expect(r.stderr).toMatch(/^push: .+ \/ .+ 100% .+\/s ETA 0s$/m);
  });
});
