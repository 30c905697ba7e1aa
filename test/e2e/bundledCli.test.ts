/**
 * `npm run build` bundles the CLI (scripts/bundle.mjs) and bin/ckpt runs the bundle: the bundled
 * commands must do what the compiled ones do, native codecs, lazily loaded commands and all.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ckptJson, ckptOk, cleanupTempDirs, newRepo, randomF32, ROOT } from './helpers.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';

afterAll(cleanupTempDirs);

describe('bundled CLI', () => {
  it('is built, prints the package version, and round-trips a checkpoint', async () => {
    const bundle = path.join(ROOT, 'dist', 'bundle', 'main.js');
    const compiled = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
    // bin/ckpt takes the bundle only when it is not older than dist/src
    expect((await fs.stat(bundle)).mtimeMs).toBeGreaterThanOrEqual((await fs.stat(compiled)).mtimeMs);
    const pkg = JSON.parse(await fs.readFile(path.join(ROOT, 'package.json'), 'utf8'));
    const dir = await newRepo();
    expect((await ckptOk(dir, '--version')).trim()).toBe(pkg.version);

    const file = path.join(dir, 'model.safetensors');
    const versions = [1, 2].map((seed) => writeSafetensors([{ name: 'w', dtype: 'F32', shape: [256, 256], data: randomF32(seed, 65536) }]));
    for (const [i, v] of versions.entries()) {
      await fs.writeFile(file, v);
      await ckptOk(dir, 'commit', '-q', '-m', `v${i}`, 'model.safetensors');
    }
    const log = await ckptJson(dir, 'log');
    expect(JSON.stringify(log)).toContain('v1');
    const out = path.join(dir, 'first.safetensors');
    await ckptOk(dir, 'checkout', '-q', 'HEAD~1', '-o', out);
    expect(Buffer.compare(await fs.readFile(out), versions[0])).toBe(0);
    const status = await ckptJson(dir, 'status');
    expect(status.files).toEqual([{ path: 'model.safetensors', state: 'unchanged' }]);
  });
});
