/**
 * Moving one pack through each transport, against `cp` of the same file in the same run
 * (interleaved rounds, medians). Ratios are cp time / transport time: 1 means as fast as a
 * plain copy, although every transport also hashes every byte and fsyncs, and GNU cp may copy in
 * the kernel (copy_file_range) without the bytes ever reaching user space: a hard peer.
 *
 * Then whole operations: `push` and `clone` of a CKPT_BENCH_CKPT_MB checkpoint (default 1024,
 * one safetensors file of random float32 tensors, stored uncompressed) to a folder, to `ckpt serve`
 * on loopback and to moto S3 on loopback (when moto_server is installed), each next to the peer
 * that moves the same file to the same kind of server in the same run: cp for the folder, curl
 * PUT/GET for HTTP and S3. Ratios are peer time / ckpt time (1 = as fast as the peer).
 *
 *   node dist/bench/transfer.js        CKPT_BENCH_MB (default 256), CKPT_BENCH_ROUNDS (default 3),
 *                                      CKPT_BENCH_CKPT_MB (default 1024; 0 skips push/clone)
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { objectHasher } from '../src/core/objectId.js';
import { packKey } from '../src/backend/objectKeys.js';
import { LocalBackend } from '../src/backend/localBackend.js';
import { HttpBackend } from '../src/backend/httpBackend.js';
import { startStoreServer } from '../src/serve/storeServer.js';
import type { Backend } from '../src/backend/backend.js';
import { openBackend } from '../src/backend/openBackend.js';
import { push } from '../src/sync/push.js';
import { clone } from '../src/sync/clone.js';
import { CountingBackend } from '../src/backend/countingBackend.js';
import { Repository } from '../src/repo/repository.js';
import { commitFiles } from '../src/repo/commit.js';
import { encodeSafetensorsHeader } from '../src/formats/safetensors.js';
import { startS3Server } from '../test/backend/s3Server.js';

const MB = Number(process.env.CKPT_BENCH_MB ?? 256);
const ROUNDS = Number(process.env.CKPT_BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function seconds(fn: () => Promise<void> | void): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function cp(from: string, to: string): void {
  const r = spawnSync('cp', [from, to]);
  if (r.status !== 0) throw new Error(`cp failed: ${r.stderr}`);
}

async function main() {
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-transfer-'));
  try {
    const file = path.join(work, 'src.pack');
    const h = await fs.open(file, 'w');
    const hasher = objectHasher('pack');
    for (let i = 0; i < MB; i++) {
      const block = randomBytes(1 << 20);
      hasher.update(block);
      await h.write(block);
    }
    await h.close();
    const key = packKey(hasher.hex());

    const server = await startStoreServer({ root: path.join(work, 'served'), log: () => undefined });
    const transports: [string, (round: number) => Promise<Backend>][] = [
      ['directory', async (r) => new LocalBackend(path.join(work, `dir-${r}`))],
      ['http (loopback)', async (r) => new HttpBackend(`${server.url}/repo-${r}`)],
    ];
    const times: Record<string, number[]> = { cp: [] };
    for (const [name] of transports) {
      times[`${name} put`] = [];
      times[`${name} getToFile`] = [];
    }
    for (let round = 0; round < ROUNDS; round++) {
      times.cp.push(await seconds(() => cp(file, path.join(work, `cp-${round}.pack`))));
      await fs.rm(path.join(work, `cp-${round}.pack`));
      for (const [name, open] of transports) {
        const t = await open(round);
        times[`${name} put`].push(await seconds(() => t.put(key, { file })));
        const dest = path.join(work, `got-${round}.pack`);
        times[`${name} getToFile`].push(await seconds(() => t.getToFile(key, dest)));
        await fs.rm(dest);
        await t.close?.();
      }
    }
    await server.close();
    const cpTime = median(times.cp);
    console.log(`transfer of one ${MB} MiB pack, median of ${ROUNDS} rounds`);
    console.log(`  cp: ${(MB / cpTime).toFixed(0)} MiB/s`);
    for (const [name, ts] of Object.entries(times)) {
      if (name === 'cp') continue;
      const t = median(ts);
      console.log(`  ${name}: ${(MB / t).toFixed(0)} MiB/s, ${(cpTime / t).toFixed(2)}x cp`);
    }
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

const CKPT_MB = Number(process.env.CKPT_BENCH_CKPT_MB ?? 1024);

/** Asynchronous: the server it talks to may run in this very process. */
function curl(args: string[], out = '/dev/null'): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-sS', '-f', '-o', out, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`curl ${args.join(' ')} failed: ${err}`))));
  });
}

/** A safetensors file of 64 MiB float32 tensors, written a tensor at a time. */
async function writeCheckpoint(file: string, mb: number): Promise<void> {
  const tensors = Math.max(1, Math.floor(mb / 64));
  const per = (mb * 1024 * 1024) / tensors;
  const header = encodeSafetensorsHeader(Array.from({ length: tensors }, (_, i) => ({ name: `t${i}`, dtype: 'F32', shape: [per / 4], length: per })));
  const h = await fs.open(file, 'w');
  await h.write(header);
  for (let i = 0; i < tensors; i++) for (let j = 0; j < per / (1 << 20); j++) await h.write(randomBytes(1 << 20));
  await h.close();
}

async function operations(): Promise<void> {
  if (CKPT_MB <= 0) return;
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-ops-'));
  const server = await startStoreServer({ root: path.join(work, 'served'), log: () => undefined, maxBodyBytes: 2 * 1024 ** 3 });
  // the S3 peer is curl with unsigned requests, which only moto accepts
  const started = await startS3Server('bench');
  const moto = started.kind === 'moto' ? started : undefined;
  if (!moto) await started.stop();
  try {
    const repo = await Repository.init(path.join(work, 'a'));
    const file = path.join(repo.root, 'model.safetensors');
    await writeCheckpoint(file, CKPT_MB);
    const size = (await fs.stat(file)).size;
    await commitFiles(repo, [file], { message: 'bench', compress: false });
    const fileHasher = objectHasher('pack');
    for await (const b of createReadStream(file, { highWaterMark: 16 << 20 })) fileHasher.update(b as Buffer);
    const asPack = packKey(fileHasher.hex());
    process.env.AWS_ACCESS_KEY_ID ??= 'bench';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
    const targets: { name: string; url: string; s3?: { endpoint: string }; peerPut: () => Promise<void> | void; peerGet: () => Promise<void> | void }[] = [
      {
        name: 'folder',
        url: path.join(work, 'remote-dir'),
        peerPut: () => cp(file, path.join(work, 'cp-put.bin')),
        peerGet: () => cp(path.join(work, 'cp-put.bin'), path.join(work, 'cp-get.bin')),
      },
      {
        name: 'http (ckpt serve, loopback)',
        url: `${server.url}/bench`,
        peerPut: () => curl(['-T', file, `${server.url}/curl/${asPack}`]),
        peerGet: () => curl([`${server.url}/curl/${asPack}`], path.join(work, 'curl-get-http.bin')),
      },
    ];
    if (moto) {
      targets.push({
        name: 's3 (moto, loopback)',
        url: 's3://bench/ckpt',
        s3: { endpoint: moto.endpoint },
        // moto accepts unsigned requests: curl moves the same bytes without SigV4
        peerPut: () => curl(['-H', 'x-amz-acl: public-read', '-T', file, `${moto.endpoint}/bench/curl/model.bin`]),
        peerGet: () => curl([`${moto.endpoint}/bench/curl/model.bin`], path.join(work, 'curl-get-s3.bin')),
      });
    }
    // clone writes the file out too: the peers write theirs to disk as well
    console.log(`\npush and clone of a ${(size / 2 ** 20).toFixed(0)} MiB checkpoint (uncompressed), against the peer moving the same file`);
    for (const tgt of targets) {
      const open = async () => new CountingBackend(await openBackend(tgt.url, { s3: tgt.s3 ? { endpoint: tgt.s3.endpoint, region: 'us-east-1' } : undefined }));
      const t = await open();
      const pushS = await seconds(async () => void (await push(repo, t, { refs: ['main'] })));
      await t.close();
      const putS = await seconds(tgt.peerPut);
      let received = 0;
      const cloneS = await seconds(async () => {
        const r = await clone(tgt.url, path.join(work, `clone-${tgt.name.split(' ')[0]}`), {
          endpoint: tgt.s3?.endpoint,
          region: tgt.s3 ? 'us-east-1' : undefined,
        });
        received = r.fetch.packs.bytes;
      });
      const getS = await seconds(tgt.peerGet);
      const peer = tgt.name === 'folder' ? 'cp' : 'curl';
      const mib = size / 2 ** 20;
      console.log(
        `  ${tgt.name}: push ${(mib / pushS).toFixed(0)} MiB/s (${t.counts.bytesSent} B sent) vs ${peer} ${(mib / putS).toFixed(0)} MiB/s = ${(putS / pushS).toFixed(2)}x; ` +
          `clone ${(mib / cloneS).toFixed(0)} MiB/s (${received} B of packs, checkout included) vs ${peer} ${(mib / getS).toFixed(0)} MiB/s = ${(getS / cloneS).toFixed(2)}x`,
      );
    }
  } finally {
    await server.close();
    await moto?.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
}

await main();
await operations();
