/**
 * push and fetch as library calls against a folder remote, through a byte-counting transport:
 * fast-forward rules, the repack path (missing records copied out of a local pack), tags and --all, and where
 * remote settings and credentials are written.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { clone } from '../../src/sync/clone.js';
import { CountingBackend } from '../../src/backend/countingBackend.js';
import { openLocalBackend } from '../../src/backend/localBackend.js';
import { fetchRemote } from '../../src/sync/fetch.js';
import { push } from '../../src/sync/push.js';
import { addRemote, removeRemote } from '../../src/sync/remoteConfig.js';
import { createRef } from '../../src/repo/branches.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { Repository } from '../../src/repo/repository.js';

let root: string;
let n = 0;
beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-push-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

const ELEMENTS = 16384; // 64 KiB tensors, one chunk each at a 64 KiB chunk size

function tensors(seeds: number[]): Uint8Array {
  return writeSafetensors(
    seeds.map((seed, i) => {
      const f = new Float32Array(ELEMENTS);
      let x = seed;
      for (let j = 0; j < ELEMENTS; j++) f[j] = (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5;
      return { name: `t${i}`, dtype: 'F32', shape: [ELEMENTS], data: new Uint8Array(f.buffer) };
    }),
  );
}

async function repoWith(seeds: number[], message = 'one'): Promise<Repository> {
  const dir = path.join(root, `repo-${++n}`);
  await fs.mkdir(dir);
  const repo = await Repository.init(dir, { chunkSize: 65536 });
  await fs.writeFile(path.join(dir, 'model.safetensors'), tensors(seeds));
  await commitFiles(repo, [path.join(dir, 'model.safetensors')], { message, compress: false });
  return repo;
}

async function commitMore(repo: Repository, seeds: number[], message: string): Promise<string> {
  await fs.writeFile(path.join(repo.root, 'model.safetensors'), tensors(seeds));
  return (await commitFiles(repo, [path.join(repo.root, 'model.safetensors')], { message, compress: false })).id;
}

async function remote(): Promise<{ url: string; t: () => Promise<CountingBackend> }> {
  const url = path.join(root, `remote-${++n}`);
  return { url, t: async () => new CountingBackend(await openLocalBackend(url)) };
}

describe('push', () => {
  it('refuses a non-fast-forward unless forced, and keeps refs/remotes/<name>/* in step', async () => {
    const r = await remote();
    const a = await repoWith([1, 2]);
    await push(a, await r.t(), { remoteName: 'origin' });
    const b = await clone(r.url, path.join(root, `b-${++n}`));
    const bRepo = await Repository.open(b.root);
    const bTip = await commitMore(bRepo, [1, 3], 'b');
    await push(bRepo, await r.t(), { remoteName: 'origin' });
    const aTip = await commitMore(a, [1, 4], 'a');
    await expect(push(a, await r.t(), { remoteName: 'origin' })).rejects.toMatchObject({ code: 'E_NON_FAST_FORWARD' });
    expect(await (await r.t()).readRef('refs/heads/main')).toBe(bTip);
    const forced = await push(a, await r.t(), { remoteName: 'origin', force: true });
    expect(forced.updates).toMatchObject([{ ref: 'refs/heads/main', old: bTip, new: aTip, status: 'forced' }]);
    expect(await a.store.refs.read('refs/remotes/origin/main')).toBe(aTip);
  });

  it('copies only the missing records of a pack the remote partly has', async () => {
    const r = await remote();
    const small = await repoWith([10, 11]);
    await push(small, await r.t(), {});
    // the same two tensors and two more, committed in one pack elsewhere
    const big = await repoWith([10, 11, 12, 13]);
    await createRef(big, 'heads', 'big');
    const t = await r.t();
    const res = await push(big, t, { refs: ['big'] });
    expect(res.chunks).toBe(3); // the two new tensors and the file's new header
    expect(t.counts.sentByKind.pack).toBeLessThan(2 * ELEMENTS * 4 + 4096);
    expect(t.counts.sentByKind.pack).toBeGreaterThanOrEqual(2 * ELEMENTS * 4);
    const c = await clone(r.url, path.join(root, `c-${++n}`), { branch: 'big' });
    const cRepo = await Repository.open(c.root);
    expect(await fs.readFile(path.join(cRepo.root, 'model.safetensors'))).toEqual(await fs.readFile(path.join(big.root, 'model.safetensors')));
  });

  it('pushes tags with --all, and fetch brings tags and nothing twice', async () => {
    const r = await remote();
    const a = await repoWith([20, 21]);
    await createRef(a, 'tags', 'v1');
    await commitMore(a, [20, 22], 'two');
    const res = await push(a, await r.t(), { all: true, remoteName: 'origin' });
    expect(res.updates.map((u) => u.ref).sort()).toEqual(['refs/heads/main', 'refs/tags/v1']);
    const dir = path.join(root, `d-${++n}`);
    const d = await clone(r.url, dir, { noCheckout: true });
    const dRepo = await Repository.open(d.root);
    expect(await dRepo.store.refs.read('refs/tags/v1')).toBe(await a.store.refs.read('refs/tags/v1'));
    await checkout(dRepo, 'v1', { output: path.join(root, `v1-${n}.safetensors`) });
    const t = await r.t();
    const again = await fetchRemote(dRepo, t, { remoteName: 'origin' });
    expect(again.commits).toBe(0);
    expect(t.counts.bytesReceived).toBeLessThan(1024);
  });
});

describe('remote config', () => {
  it('keeps credentials in config.local only, and remove drops them and the tracking refs', async () => {
    const a = await repoWith([30]);
    await addRemote(a, 'origin', { url: 's3://bucket/prefix', region: 'eu-west-1' }, { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'SECRETEXAMPLE' });
    const shared = await fs.readFile(path.join(a.store.dir, 'config'), 'utf8');
    expect(shared).toContain('s3://bucket/prefix');
    expect(shared).not.toContain('SECRETEXAMPLE');
    const local = path.join(a.store.dir, 'config.local');
    expect(await fs.readFile(local, 'utf8')).toContain('SECRETEXAMPLE');
    expect((await fs.stat(local)).mode & 0o077).toBe(0);
    await expect(addRemote(a, 'origin', { url: '/x' })).rejects.toMatchObject({ code: 'E_EXISTS' });
    await a.store.refs.cas('refs/remotes/origin/main', null, (await a.headCommit())!, 'test');
    await removeRemote(a, 'origin');
    expect(await fs.readFile(local, 'utf8')).not.toContain('SECRETEXAMPLE');
    expect(await a.store.refs.list('refs/remotes/')).toEqual(new Map());
  });
});
