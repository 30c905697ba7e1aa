/**
 * Acceptance 2, for each transport: A commits three checkpoints and pushes; B clones into an
 * empty folder and checks each out byte-identical; A commits a fourth with 10% of the tensors
 * changed and pushes, B pulls; both transfers, as counted by the transport, stay within 12% of
 * the checkpoint plus metadata.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, newRepo, sha256File, tempDir } from './helpers.js';
import { KINDS, checkRemote, model, runJson, runOk, startRemote, type TestRemote } from './remoteHelpers.js';

afterAll(cleanupTempDirs);

const CHUNK = 65536;
const TENSORS = 20;
const ELEMENTS = 65536; // 256 KiB per tensor: four chunks
/** Index files, manifests, trees, commits and the ref of one small commit. */
const METADATA_ALLOWANCE = 64 * 1024;
/**
 * Commits use the default (compression, delta chunks against the parent), as users' do;
 * CKPT_E2E_PLAIN=1 stores plain chunks, for byte counts that equal the raw tensor bytes.
 */
const COMMIT_FLAGS = process.env.CKPT_E2E_PLAIN ? ['--no-compress'] : [];

describe.each(KINDS)('push, clone, pull over %s', (kind) => {
  let remote: TestRemote;
  beforeAll(async () => {
    remote = await startRemote(kind);
  });
  afterAll(async () => {
    await remote?.stop();
  });

  it('moves only what the other side lacks and checks out byte-identical', async () => {
    const env = remote.env;
    const url = remote.newUrl();
    const a = await newRepo('--chunk-size', String(CHUNK));
    const keep = await tempDir('ckpt-originals-');
    const file = path.join(a, 'model.safetensors');
    const commits: { id: string; copy: string }[] = [];
    const commitStep = async (step: number, seeds: number[]) => {
      await fs.writeFile(file, model(seeds, ELEMENTS));
      const c = await runJson(a, env, 'commit', 'model.safetensors', '-m', `step ${step}`, '--step', String(step), ...COMMIT_FLAGS);
      const copy = path.join(keep, `step${step}.safetensors`);
      await fs.copyFile(file, copy);
      commits.push({ id: c.id, copy });
    };
    let seeds = Array.from({ length: TENSORS }, (_, i) => 100 + i);
    for (let step = 1; step <= 3; step++) {
      seeds = seeds.map((s) => s + 1000);
      await commitStep(step, seeds);
    }
    await runOk(a, env, 'remote', 'add', 'origin', url, ...remote.args);
    const p1 = await runJson(a, env, 'push');
    expect(p1.updates).toMatchObject([{ ref: 'refs/heads/main', old: null, new: commits[2].id, status: 'created' }]);
    expect(p1.commits).toBe(3);

    const bParent = await tempDir('ckpt-b-');
    const b = path.join(bParent, 'clone');
    const cl = await runJson(bParent, env, 'clone', url, 'clone', ...remote.args);
    expect(cl.head).toBe(commits[2].id);
    expect(await sha256File(path.join(b, 'model.safetensors'))).toBe(await sha256File(commits[2].copy));
    for (const c of commits) {
      const out = path.join(bParent, `${c.id}.safetensors`);
      await runOk(b, env, 'checkout', c.id, '-o', out);
      expect(await sha256File(out)).toBe(await sha256File(c.copy));
    }

    // step 4: two of twenty tensors change
    const size = (await fs.stat(file)).size;
    seeds = [...seeds];
    seeds[3] += 500_000;
    seeds[11] += 500_000;
    await commitStep(4, seeds);
    const p2 = await runJson(a, env, 'push', 'origin', 'main');
    const sent = p2.transfer;
    console.log(`${kind}: checkpoint ${size} B; push of step 4 sent ${sent.bytesSent} B (packs ${sent.sentByKind.pack}, index ${sent.sentByKind.index}, meta ${sent.sentByKind.meta}, ref ${sent.sentByKind.ref}); ${(sent.bytesSent / size * 100).toFixed(1)}%`);
    expect(p2.commits).toBe(1);
    expect(sent.sentByKind.pack).toBeLessThanOrEqual(0.12 * size);
    expect(sent.sentByKind.pack).toBeGreaterThan(0);
    expect(sent.bytesSent).toBeLessThanOrEqual(0.12 * size + METADATA_ALLOWANCE);

    const pl = await runJson(b, env, 'pull');
    const got = pl.transfer;
    console.log(`${kind}: pull of step 4 received ${got.bytesReceived} B (packs ${got.receivedByKind.pack}, index ${got.receivedByKind.index}, meta ${got.receivedByKind.meta}); ${(got.bytesReceived / size * 100).toFixed(1)}%`);
    expect(pl.status).toBe('fast-forward');
    expect(pl.new).toBe(commits[3].id);
    expect(got.receivedByKind.pack).toBeLessThanOrEqual(0.12 * size);
    expect(got.bytesReceived).toBeLessThanOrEqual(0.12 * size + METADATA_ALLOWANCE);
    const out4 = path.join(bParent, 'step4.safetensors');
    await runOk(b, env, 'checkout', 'origin/main', '-o', out4);
    expect(await sha256File(out4)).toBe(await sha256File(commits[3].copy));
    const log = await runJson(b, env, 'log', 'origin/main');
    expect(log.map((e: { id: string }) => e.id)).toEqual(commits.map((c) => c.id).reverse());

    // nothing left to move either way
    const again = await runJson(a, env, 'push');
    expect(again.updates[0].status).toBe('up-to-date');
    expect(again.transfer.bytesSent).toBe(0);
    const fetched = await runJson(b, env, 'fetch');
    expect(fetched.transfer.receivedByKind.pack).toBe(0);
    expect(await checkRemote(remote, url)).toEqual({ 'refs/heads/main': commits[3].id });
  });
});
