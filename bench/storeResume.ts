/**
 * Issue 11, acceptance 2 at full size: resume on a fresh machine from a store elsewhere. A store
 * in `ckpt serve` (loopback) and one in moto S3 (loopback, when moto_server is installed) each hold
 * 20 versions of one CKPT_BENCH_RESUME_MB checkpoint (default 1024: sixteen F32 tensors, a quarter
 * of them moving at every version, every element of those, as a fine-tune with frozen layers does).
 * From an empty folder with an empty cache, `ckpt --store URL checkout best:val_loss -o out/`:
 *
 * - bytes on the wire (a counting TCP proxy in front of the server: both ways, headers, listings,
 *   index files, metadata and lock traffic included) against the checkpoint's stored bytes (the
 *   stored bytes of the chunks its manifest names plus their delta bases): at most 1.05;
 * - the same checkout again, the cache now warm;
 * - its peer, what a fresh machine does without --store: `ckpt clone` of the store (the whole
 *   history) then a checkout; bytes and time against the resume's, in the same run.
 *
 *   node dist/bench/storeResume.js     CKPT_BENCH_RESUME_MB (default 1024), CKPT_BENCH_RESUME_VERSIONS (default 20),
 *                                      CKPT_BENCH_RESUME_STORES (default http,s3), CKPT_BENCH_RESUME_PEER=0 skips the clone
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectId } from '../src/core/objectId.js';
import { encodeSafetensorsHeader } from '../src/formats/safetensors.js';
import { openBackend, type OpenBackendOptions } from '../src/backend/openBackend.js';
import { Repository } from '../src/repo/repository.js';
import { resolveRevision } from '../src/repo/resolveRevision.js';
import { startStoreServer } from '../src/serve/storeServer.js';
import { Store } from '../src/store/store.js';
import { motoAvailable, startS3Server } from '../test/backend/s3Server.js';
import { countingProxy, type CountingProxy } from '../test/e2e/storeBackends.js';

const ckptBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');
const MB = Number(process.env.CKPT_BENCH_RESUME_MB ?? 1024);
const VERSIONS = Number(process.env.CKPT_BENCH_RESUME_VERSIONS ?? 20);
const BEST = Math.max(1, Math.round(VERSIONS * 0.7));
const STORES = (process.env.CKPT_BENCH_RESUME_STORES ?? 'http,s3').split(',');
const PEER = process.env.CKPT_BENCH_RESUME_PEER !== '0';
const TENSORS = 16;
const TOKEN = 'bench-admin-token';
const MiB = 1024 * 1024;

/** Runs bin/ckpt without blocking this process's event loop (the proxy and server live here). */
function ckpt(cwd: string, env: Record<string, string>, ...args: string[]): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ckptBin, ...args], { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e9) : reject(new Error(`ckpt ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

/** xorshift32 words shaped like trained F32 weights (random sign and mantissa, narrow exponents). */
function fillWeights(buf: Uint32Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < buf.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    buf[i] = ((s & 0x80000000) | ((114 + ((s >>> 8) % 11)) << 23) | ((s * 2654435761) >>> 9)) >>> 0;
  }
}

/** Writes version `v`; returns the file's SHA-256. Tensors 0, 4, 8 and 12 move; the rest are frozen. */
async function writeVersion(file: string, v: number): Promise<string> {
  const tensorBytes = (MB * MiB) / TENSORS;
  const header = encodeSafetensorsHeader(
    Array.from({ length: TENSORS }, (_, t) => ({ name: `model.layers.${t}.weight`, dtype: 'F32', shape: [tensorBytes / 4 / 1024, 1024], length: tensorBytes })),
  );
  const h = createHash('sha256');
  const fh = await fs.open(file, 'w');
  try {
    await fh.write(header);
    h.update(header);
    const words = new Uint32Array(tensorBytes / 4);
    const drift = new Uint32Array(tensorBytes / 4);
    for (let t = 0; t < TENSORS; t++) {
      fillWeights(words, 1000 + t);
      if (t % 4 === 0) {
        // every element moves a little: the low mantissa bits change, as small optimizer steps do
        fillWeights(drift, 9000 + t);
        const f = new Float32Array(words.buffer);
        const d = new Float32Array(drift.buffer);
        for (let i = 0; i < f.length; i++) f[i] += d[i] * 1e-3 * v;
      }
      const bytes = new Uint8Array(words.buffer);
      await fh.write(bytes);
      h.update(bytes);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

async function sha256(file: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await fs.open(file, 'r');
  try {
    for await (const b of fh.createReadStream({ highWaterMark: 8 * MiB })) h.update(b as Buffer);
  } finally {
    await fh.close().catch(() => undefined);
  }
  return h.digest('hex');
}

/** Stored bytes of the chunks best:val_loss needs, delta bases included, each once. */
async function storedBytes(url: string, options: OpenBackendOptions, scratch: string): Promise<{ bytes: number; chunks: number; bases: number }> {
  const backend = await openBackend(url, options);
  try {
    const store = await Store.openBackend(backend, scratch);
    const repo = await Repository.withStore(scratch, store);
    const index = await store.index();
    const tree = await repo.readTree((await repo.readCommit(await resolveRevision(repo, 'best:val_loss'))).tree);
    const need = new Set<ObjectId>();
    for (const e of Object.values(tree.files)) for (const s of (await repo.readManifest(e.manifest)).segments) for (const [id] of s.chunks) need.add(id);
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
    return { bytes, chunks: need.size, bases: all.size - need.size };
  } finally {
    await backend.close?.();
  }
}

const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-resume-'));
  const stops: Array<() => Promise<void>> = [];
  try {
    const writer = path.join(work, 'writer');
    await fs.mkdir(writer);
    const quiet = { CKPT_AUTHOR: 'bench <bench@ckpt>' };
    await ckpt(writer, quiet, 'init', '-q');
    process.stdout.write(`resume from a store elsewhere: ${VERSIONS} versions of a ${MB} MiB checkpoint, best:val_loss is version ${BEST}\n`);
    let bestSha = '';
    const t0 = Date.now();
    for (let v = 1; v <= VERSIONS; v++) {
      const file = path.join(writer, 'model.safetensors');
      const s = await writeVersion(file, v);
      if (v === BEST) bestSha = s;
      const loss = v === BEST ? 0.1 : 0.2 + Math.abs(v - BEST) * 0.01;
      await ckpt(writer, quiet, 'commit', 'model.safetensors', '-m', `step ${v * 100}`, '--step', String(v * 100), '--metric', `val_loss=${loss}`, '-q');
    }
    process.stdout.write(`  ${VERSIONS} local commits: ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);

    const server = await startStoreServer({ root: path.join(work, 'served'), adminToken: TOKEN, log: () => undefined });
    stops.push(() => server.close());
    const targets: { name: string; url: string; env: Record<string, string>; remoteArgs: string[]; options: OpenBackendOptions; proxy: CountingProxy }[] = [];
    const httpProxy = await countingProxy(server.port);
    stops.push(() => httpProxy.close());
    if (STORES.includes('http')) targets.push({
      name: 'ckpt serve',
      url: `http://127.0.0.1:${httpProxy.port}/resume`,
      env: { CKPT_TOKEN: TOKEN },
      remoteArgs: ['--token', TOKEN],
      options: { http: { token: TOKEN } },
      proxy: httpProxy,
    });
    if (!STORES.includes('s3')) {
      // not asked for
    } else if (motoAvailable()) {
      const s3 = await startS3Server('bench-resume');
      stops.push(() => s3.stop());
      const proxy = await countingProxy(Number(new URL(s3.endpoint).port));
      stops.push(() => proxy.close());
      const endpoint = `http://127.0.0.1:${proxy.port}`;
      targets.push({
        name: 'S3 (moto)',
        url: `s3://${s3.bucket}/resume`,
        env: { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, AWS_REGION: s3.region, AWS_ENDPOINT_URL_S3: endpoint },
        remoteArgs: ['--endpoint', endpoint, '--region', s3.region],
        options: { s3: { endpoint, region: s3.region, credentials: s3.credentials } },
        proxy,
      });
    } else process.stdout.write('  (moto_server is not installed: S3 skipped)\n');

    for (const [i, t] of targets.entries()) {
      const env = { ...quiet, ...t.env, CKPT_CACHE_DIR: path.join(work, `cache-writer-${i}`) };
      await ckpt(writer, env, '--store', t.url, 'init', '-q');
      await ckpt(writer, { ...quiet, ...t.env }, 'remote', 'add', `r${i}`, t.url, ...t.remoteArgs);
      const pushS = await ckpt(writer, { ...quiet, ...t.env }, 'push', `r${i}`, 'main', '-q');
      const stored = await storedBytes(t.url, t.options, await fs.mkdtemp(path.join(work, 'scratch-')));

      // a fresh machine: an empty folder, an empty cache
      const fresh = path.join(work, `fresh-${i}`);
      await fs.mkdir(fresh);
      const freshEnv = { ...quiet, ...t.env, CKPT_CACHE_DIR: path.join(work, `cache-fresh-${i}`) };
      t.proxy.reset();
      const coldS = await ckpt(fresh, freshEnv, '--store', t.url, 'checkout', 'best:val_loss', '-o', 'out/', '-q');
      const cold = t.proxy.bytes.up + t.proxy.bytes.down;
      const exact = (await sha256(path.join(fresh, 'out', 'model.safetensors'))) === bestSha;
      await fs.rm(path.join(fresh, 'out'), { recursive: true });
      t.proxy.reset();
      const warmS = await ckpt(fresh, freshEnv, '--store', t.url, 'checkout', 'best:val_loss', '-o', 'again/', '-q');
      const warm = t.proxy.bytes.up + t.proxy.bytes.down;
      await fs.rm(path.join(fresh, 'again'), { recursive: true });

      // the peer: clone the whole store, then check out
      let peerLine = '';
      if (PEER) {
        const peer = path.join(work, `peer-${i}`);
        await fs.mkdir(peer);
        t.proxy.reset();
        const cloneS = await ckpt(peer, { ...quiet, ...t.env }, 'clone', t.url, 'c', '--no-checkout', '-q', ...t.remoteArgs);
        const cloneBytes = t.proxy.bytes.up + t.proxy.bytes.down;
        const peerCheckoutS = await ckpt(path.join(peer, 'c'), quiet, 'checkout', 'best:val_loss', '-o', 'out/', '-q');
        await fs.rm(peer, { recursive: true });
        peerLine =
          `    peer: clone + checkout      ${mib(cloneBytes)} = ${(cloneBytes / stored.bytes).toFixed(2)}x, ${(cloneS + peerCheckoutS).toFixed(1)} s` +
          ` (resume is ${((cloneS + peerCheckoutS) / coldS).toFixed(2)}x as fast, ${(cloneBytes / cold).toFixed(2)}x fewer bytes)\n`;
      }

      process.stdout.write(
        `\n  ${t.name} (push of the history ${pushS.toFixed(1)} s)\n` +
          `    checkpoint's stored bytes   ${mib(stored.bytes)} (${stored.chunks} chunks + ${stored.bases} delta bases)\n` +
          `    --store checkout, cold      ${mib(cold)} on the wire = ${(cold / stored.bytes).toFixed(4)}x stored (bound 1.05), ${coldS.toFixed(1)} s, byte-exact: ${exact}\n` +
          `    --store checkout, warm      ${mib(warm)} = ${(warm / stored.bytes).toFixed(4)}x, ${warmS.toFixed(1)} s\n` +
          peerLine,
      );
      if (!exact) process.exitCode = 1;
    }
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
