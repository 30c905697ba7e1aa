/**
 * Partial clones: `clone --partial` brings metadata only; `checkout --tensors GLOB` then fetches
 * just those tensors' chunks by byte range (not whole packs), verified, and writes the same
 * bytes a full store would.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, newRepo, sha256File, tempDir } from './helpers.js';
import { KINDS, model, runJson, runOk, startRemote, type TestRemote } from './remoteHelpers.js';

afterAll(cleanupTempDirs);

const ELEMENTS = 65536;
const TENSOR_BYTES = ELEMENTS * 4;

describe.each(KINDS)('partial clone over %s', (kind) => {
  let remote: TestRemote;
  beforeAll(async () => {
    remote = await startRemote(kind);
  });
  afterAll(async () => {
    await remote?.stop();
  });

  it('checkout --tensors fetches only those tensors, by byte range', async () => {
    const env = remote.env;
    const url = remote.newUrl();
    const a = await newRepo('--chunk-size', '65536');
    await fs.writeFile(path.join(a, 'model.safetensors'), model(Array.from({ length: 20 }, (_, i) => 700 + i), ELEMENTS));
    await runOk(a, env, 'commit', 'model.safetensors', '-m', 'one');
    await runOk(a, env, 'remote', 'add', 'origin', url, ...remote.args);
    await runOk(a, env, 'push');
    const glob = 'layers.{3,12}.weight';
    const want = path.join(a, 'want.safetensors');
    await runOk(a, env, 'checkout', 'main', '--tensors', glob, '-o', want);

    const parent = await tempDir('ckpt-partial-');
    const cl = await runJson(parent, env, 'clone', url, 'b', '--partial', ...remote.args);
    expect(cl.transfer.receivedByKind.pack).toBe(0);
    const b = path.join(parent, 'b');
    const got = path.join(parent, 'got.safetensors');
    const r = await runJson(b, env, 'checkout', 'main', '--tensors', glob, '-o', got);
    expect(await sha256File(got)).toBe(await sha256File(want));
    console.log(`${kind}: partial checkout of 2 of 20 tensors fetched ${r.fetched.bytes} B in ${r.fetched.requests} range request(s)`);
    expect(r.fetched.bytes).toBeGreaterThan(0);
    expect(r.fetched.bytes).toBeLessThanOrEqual(2 * TENSOR_BYTES * 1.05);
    // the second time, everything is local
    const again = await runJson(b, env, 'checkout', 'main', '--tensors', glob, '-o', got);
    expect(again.fetched).toBeUndefined();
    // a full checkout fetches the rest and is byte-identical
    const full = await runJson(b, env, 'checkout', 'main', '-o', path.join(parent, 'full.safetensors'));
    expect(await sha256File(path.join(parent, 'full.safetensors'))).toBe(await sha256File(path.join(a, 'model.safetensors')));
    expect(full.fetched.bytes).toBeLessThan((await fs.stat(path.join(a, 'model.safetensors'))).size);
  });
});
