/**
 * Issue 11, acceptance 2, scaled down (bench/storeResume.ts does it with 1 GiB): a store in
 * `ckpt serve` or S3 holds 20 versions of one checkpoint; on a fresh machine (no `.ckpt/`, an
 * empty cache) `ckpt --store URL checkout best:val_loss -o out/` transfers at most 1.05x that
 * checkpoint's stored bytes and writes it byte-exact.
 *
 * Transfer is measured on the wire, by a TCP proxy in front of the server: every byte each way,
 * HTTP headers, listings, index files, metadata and lock traffic included. The checkpoint's
 * stored bytes are the stored bytes of the chunks its manifests name plus, transitively, their
 * delta bases (what du counts as the bytes in packs of those chunks).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ObjectId } from '../../src/core/objectId.js';
import type { Manifest } from '../../src/core/objects.js';
import { openBackend } from '../../src/backend/openBackend.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { Repository } from '../../src/repo/repository.js';
import { resolveRevision } from '../../src/repo/resolveRevision.js';
import { Store } from '../../src/store/store.js';
import { cleanupTempDirs, randomF32, tempDir } from './helpers.js';
import { runIn } from './inProcess.js';
import { ADMIN_TOKEN, startStores, storeKindReady, type StoreKind, type TestStores } from './storeBackends.js';

const VERSIONS = 20;
const BEST = 14;
const TENSORS = 8;
const ELEMENTS = 128 * 1024; // 512 KiB a tensor, 4 MiB a checkpoint

/**
 * Version `v` of the checkpoint: two frozen tensors, six that training moves a little at every
 * step (every element, as an optimizer step does), so versions are stored as deltas.
 */
function version(v: number): Uint8Array {
  const tensors = Array.from({ length: TENSORS }, (_, t) => {
    const data = BASE[t].slice();
    if (t >= 2) for (let i = 0; i < ELEMENTS; i++) data[i] += DRIFT[t][i] * 0.02 * v;
    return { name: `model.layers.${t}.weight`, dtype: 'F32' as const, shape: [512, 256], data: new Uint8Array(data.buffer) };
  });
  return writeSafetensors(tensors);
}
const BASE = Array.from({ length: TENSORS }, (_, t) => new Float32Array(randomF32(1000 + t, ELEMENTS).buffer));
const DRIFT = Array.from({ length: TENSORS }, (_, t) => new Float32Array(randomF32(5000 + t, ELEMENTS).buffer));

const valLoss = (v: number) => (v === BEST ? 0.1 : 0.2 + Math.abs(v - BEST) * 0.01);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Stored bytes of the chunks a commit's files need, delta bases included, each chunk once. */
async function storedBytesOf(store: Store, repo: Repository, commit: ObjectId): Promise<{ bytes: number; chunks: number; bases: number }> {
  const index = await store.index();
  const tree = await repo.readTree((await repo.readCommit(commit)).tree);
  const need = new Set<ObjectId>();
  for (const e of Object.values(tree.files)) {
    const m: Manifest = await repo.readManifest(e.manifest);
    for (const s of m.segments) for (const [id] of s.chunks) need.add(id);
  }
  const direct = need.size;
  const all = new Set<ObjectId>();
  for (let id of need) {
    while (!all.has(id)) {
      all.add(id);
      const base = index.get(id)?.base;
      if (!base) break;
      id = base;
    }
  }
  let bytes = 0;
  for (const id of all) bytes += index.get(id)!.stored;
  return { bytes, chunks: direct, bases: all.size - direct };
}

const measured: string[] = [];

afterAll(async () => {
  if (measured.length) console.info(`acceptance 2 (scaled: ${VERSIONS} versions of ${(TENSORS * ELEMENTS * 4) / 2 ** 20} MiB):\n  ${measured.join('\n  ')}`);
  await cleanupTempDirs();
});

for (const kind of ['http', 's3'] as StoreKind[]) {
  const ready = await storeKindReady(kind);
  describe.skipIf(!ready.ready)(`resume from a ${kind} store on a fresh machine${ready.ready ? '' : ` (skipped: ${ready.why})`}`, () => {
    let stores: TestStores;
    afterAll(async () => {
      await stores?.stop();
    });

    it('checkout best:val_loss transfers at most 1.05x the checkpoint\'s stored bytes, byte-exact; a warm cache transfers less', async () => {
      stores = await startStores(kind, { counting: true });
      const url = stores.newUrl('resume');
      const writer = await tempDir('ckpt-resume-writer-');
      const writerEnv = { ...stores.env, CKPT_CACHE_DIR: await tempDir('ckpt-resume-cache-w-') };
      const ok = async (cwd: string, env: Record<string, string>, ...args: string[]) => {
        const r = await runIn(cwd, ['--store', url, ...args], env);
        if (r.code !== 0) throw new Error(`ckpt --store ${url} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
        return r.stdout;
      };
      // the 20 versions are committed on a machine of their own and pushed into the store
      // (`ckpt --store URL commit` is tested in anyStore.test.ts; here only the reading counts)
      await ok(writer, writerEnv, 'init');
      const local = async (...args: string[]) => {
        const r = await runIn(writer, args, writerEnv);
        if (r.code !== 0) throw new Error(`ckpt ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      };
      await local('init');
      let bestSha = '';
      for (let v = 1; v <= VERSIONS; v++) {
        const bytes = version(v);
        if (v === BEST) bestSha = sha(bytes);
        await fs.writeFile(path.join(writer, 'model.safetensors'), bytes);
        await local('commit', 'model.safetensors', '-m', `step ${v * 100}`, '--step', String(v * 100), '--metric', `val_loss=${valLoss(v)}`, '-q');
      }
      const creds =
        kind === 'http'
          ? ['--token', ADMIN_TOKEN]
          : ['--endpoint', stores.env.AWS_ENDPOINT_URL_S3, '--region', stores.s3!.region, '--access-key-id', stores.s3!.credentials.accessKeyId, '--secret-access-key', stores.s3!.credentials.secretAccessKey];
      await local('remote', 'add', 'origin', url, ...creds);
      await local('push', 'origin', 'main', '-q');

      // a fresh machine: an empty folder and an empty cache
      const fresh = await tempDir('ckpt-resume-fresh-');
      const freshEnv = { ...stores.env, CKPT_CACHE_DIR: await tempDir('ckpt-resume-cache-') };
      const proxy = stores.proxy!;
      proxy.reset();
      await ok(fresh, freshEnv, 'checkout', 'best:val_loss', '-o', 'out/');
      const cold = proxy.bytes.up + proxy.bytes.down;
      expect(sha(await fs.readFile(path.join(fresh, 'out', 'model.safetensors')))).toBe(bestSha);

      // the same checkout again: index files and metadata now come from the cache
      proxy.reset();
      await ok(fresh, freshEnv, 'checkout', 'best:val_loss', '-o', 'again/');
      const warm = proxy.bytes.up + proxy.bytes.down;
      expect(sha(await fs.readFile(path.join(fresh, 'again', 'model.safetensors')))).toBe(bestSha);

      // the denominator, read with the library (through the proxy too, after the measurements)
      const backend = await openBackend(url, {
        http: { token: ADMIN_TOKEN },
        s3: stores.s3 && { endpoint: stores.env.AWS_ENDPOINT_URL_S3, region: stores.s3.region, credentials: stores.s3.credentials },
      });
      const store = await Store.openBackend(backend, await tempDir('ckpt-resume-scratch-'));
      const repo = await Repository.withStore(fresh, store);
      const best = await resolveRevision(repo, 'best:val_loss');
      const stored = await storedBytesOf(store, repo, best);
      await backend.close?.();
      const ratio = cold / stored.bytes;
      measured.push(
        `${kind}: cold ${cold} B on the wire for ${stored.bytes} B stored (${stored.chunks} chunks + ${stored.bases} delta bases): ` +
          `${ratio.toFixed(4)}x; warm cache ${warm} B (${(warm / stored.bytes).toFixed(4)}x)`,
      );
      expect(cold).toBeGreaterThanOrEqual(stored.bytes);
      expect(ratio).toBeLessThanOrEqual(1.05);
      expect(warm).toBeLessThan(cold);
      expect(warm).toBeGreaterThanOrEqual(stored.bytes); // pack bytes are never cached
    });
  });
}

describe('the cache settings', () => {
  it('refuses a $CKPT_CACHE_SIZE that is not a size, naming it', async () => {
    const work = await tempDir('ckpt-resume-badsize-');
    const r = await runIn(work, ['--store', 'http://127.0.0.1:9/none', 'log'], { CKPT_CACHE_SIZE: 'lots', CKPT_CACHE_DIR: await tempDir('ckpt-resume-cache-') });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\$CKPT_CACHE_SIZE expects a size such as 512M or 2G, got "lots"/);
  });
});
