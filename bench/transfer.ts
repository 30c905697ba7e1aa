/**
 * Moving one pack through each transport, against `cp` of the same file in the same run
 * (interleaved rounds, medians). Ratios are cp time / transport time: 1 means as fast as a
 * plain copy, although every transport also hashes every byte and fsyncs, and GNU cp may copy in
 * the kernel (copy_file_range) without the bytes ever reaching user space: a hard peer.
 *
 * Then whole operations on a CKPT_BENCH_CKPT_MB checkpoint (default 1024; 4096 for issue 12's
 * case: one safetensors file of random float32 tensors, stored uncompressed), over `ckpt serve`
 * (its own process, as users run it) and moto S3 (when installed), all on loopback, each next to
 * curl moving the same file to the same server in the same round: push against curl PUT, fetch
 * alone (clone --no-checkout) against curl GET, clone with checkout (which writes the bytes twice)
 * against curl GET + cp. Ratios are curl time / ckpt time (1 = as fast as curl). Then, in the
 * first CKPT_BENCH_RESUME_ROUNDS rounds (default 1), a `ckpt push` child SIGKILLed once half the
 * store's bytes went through a counting proxy, and run again: the bytes the re-run sends against
 * those that remained.
 *
 *   node dist/bench/transfer.js        CKPT_BENCH_MB (default 256; 0 skips the single pack),
 *                                      CKPT_BENCH_ROUNDS (default 3), CKPT_BENCH_CKPT_MB,
 *                                      CKPT_BENCH_JOBS (push/fetch --jobs; default theirs)
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
import { Repository } from '../src/repo/repository.js';
import { commitFiles } from '../src/repo/commit.js';
import { encodeSafetensorsHeader } from '../src/formats/safetensors.js';
import { startS3Server } from '../test/backend/s3Server.js';
import { startCountingProxy } from '../test/e2e/countingProxy.js';
import { DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { fileURLToPath } from 'node:url';

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

/** A process's CLI: `node bin/ckpt ...`, from the repository this file was built from. */
const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');

/** `ckpt serve` as its own process, as users run it (not in this one, where it would share the event loop with the client). */
async function startServeProcess(root: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--root', root, '--port', '0', '--max-body', String(16 * 1024 ** 3), '--max-uploads', '64'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(buf);
      if (m) resolve(m[1]);
    });
    child.once('exit', () => reject(new Error('ckpt serve exited early')));
  });
  child.stdout!.resume();
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * A `ckpt push` child process SIGKILLed once half the store's objects are on the wire (counted by
 * a proxy in front of the server), then run again: the bytes the re-run sends, against those that
 * remained.
 */
async function killedPush(repoDir: string, remoteUrl: (proxy: string) => string, extraArgs: (proxy: string) => string[], target: string, total: number, env: NodeJS.ProcessEnv): Promise<{ before: number; resent: number; remaining: number }> {
  const { hostname, port } = new URL(target);
  const proxy = await startCountingProxy(hostname, Number(port));
  const name = `resume${Date.now()}`;
  try {
    const run = (args: string[]) => spawn(process.execPath, [CLI, ...args], { cwd: repoDir, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    const exit = (c: ReturnType<typeof run>) => new Promise<string>((resolve) => {
      let err = '';
      c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
      c.once('close', (code, signal) => resolve(`${code ?? signal} ${err}`));
    });
    const added = await exit(run(['remote', 'add', name, remoteUrl(proxy.address), ...extraArgs(proxy.address)]));
    if (!added.startsWith('0')) throw new Error(`remote add failed: ${added}`);
    const child = run(['push', name, 'main']);
    const done = exit(child);
    proxy.onSent = (n) => {
      if (n >= total / 2) {
        proxy.onSent = undefined;
        child.kill('SIGKILL');
      }
    };
    const first = await done;
    if (!first.startsWith('SIGKILL')) throw new Error(`the push was not killed: ${first}`);
    await new Promise((r) => setTimeout(r, 500));
    const before = proxy.sent;
    const second = await exit(run(['push', name, 'main']));
    if (!second.startsWith('0')) throw new Error(`the re-run failed: ${second}`);
    return { before, resent: proxy.sent - before, remaining: total - before };
  } finally {
    await proxy.close();
  }
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return n;
}

async function operations(): Promise<void> {
  if (CKPT_MB <= 0) return;
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-ops-'));
  const server = await startServeProcess(path.join(work, 'served'));
  // the S3 peer is curl with unsigned requests, which only moto accepts
  const started = await startS3Server('bench');
  const moto = started.kind === 'moto' ? started : undefined;
  if (!moto) await started.stop();
  const jobs = process.env.CKPT_BENCH_JOBS ? Number(process.env.CKPT_BENCH_JOBS) : undefined;
  const resumeRounds = Number(process.env.CKPT_BENCH_RESUME_ROUNDS ?? 1);
  try {
    const repo = await Repository.init(path.join(work, 'a'));
    const file = path.join(repo.root, 'model.safetensors');
    await writeCheckpoint(file, CKPT_MB);
    const size = (await fs.stat(file)).size;
    await commitFiles(repo, [file], { message: 'bench', compress: false });
    const total = await dirBytes(path.join(repo.root, '.ckpt', 'objects'));
    const fileHasher = objectHasher('pack');
    for await (const b of createReadStream(file, { highWaterMark: 16 << 20 })) fileHasher.update(b as Buffer);
    const asPack = packKey(fileHasher.hex());
    process.env.AWS_ACCESS_KEY_ID ??= 'bench';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'bench';
    interface Target {
      name: string;
      url: (round: number) => string;
      s3?: { endpoint: string };
      peerPut: () => Promise<void>;
      peerGet: (dest: string) => Promise<void>;
      cleanup: (round: number) => Promise<void>;
    }
    const targets: Target[] = [
      {
        name: 'ckpt serve',
        url: (r) => `${server.url}/bench${r}`,
        peerPut: () => curl(['-T', file, `${server.url}/curl/${asPack}`]),
        peerGet: (dest) => curl([`${server.url}/curl/${asPack}`], dest),
        cleanup: async (r) => {
          await fs.rm(path.join(work, 'served', `bench${r}`), { recursive: true, force: true });
          await fs.rm(path.join(work, 'served', 'curl'), { recursive: true, force: true });
        },
      },
    ];
    if (moto) {
      targets.push({
        name: 's3 (moto)',
        url: (r) => `s3://bench/ckpt${r}`,
        s3: { endpoint: moto.endpoint },
        // moto accepts unsigned requests: curl moves the same bytes without SigV4
        peerPut: () => curl(['-H', 'x-amz-acl: public-read', '-T', file, `${moto.endpoint}/bench/curl/model.bin`]),
        peerGet: (dest) => curl([`${moto.endpoint}/bench/curl/model.bin`], dest),
        cleanup: async () => {
          // moto keeps objects in temporary files: free them between rounds
          const all = await moto.client.send(new ListObjectsV2Command({ Bucket: 'bench' }));
          for (const o of all.Contents ?? []) await moto.client.send(new DeleteObjectCommand({ Bucket: 'bench', Key: o.Key! }));
        },
      });
    }
    const names = ['push', 'curl PUT', 'fetch', 'curl GET', 'clone', 'curl GET + cp'] as const;
    const times = new Map<string, Record<(typeof names)[number], number[]>>();
    const resumes = new Map<string, { before: number; resent: number; remaining: number }[]>();
    for (const t of targets) {
      times.set(t.name, Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<(typeof names)[number], number[]>);
      resumes.set(t.name, []);
    }
    const loads: string[] = [];
    console.log(`\npush, fetch and clone of a ${(size / 2 ** 20).toFixed(0)} MiB checkpoint (uncompressed, ${total} B of objects), ${ROUNDS} interleaved rounds${jobs ? `, --jobs ${jobs}` : ''}`);
    for (let round = 0; round < ROUNDS; round++) {
      for (const tgt of targets) {
        const ts = times.get(tgt.name)!;
        const opts = { endpoint: tgt.s3?.endpoint, region: tgt.s3 ? 'us-east-1' : undefined, jobs };
        const t = await openBackend(tgt.url(round), { s3: tgt.s3 ? { endpoint: tgt.s3.endpoint, region: 'us-east-1' } : undefined });
        ts.push.push(await seconds(async () => void (await push(repo, t, { refs: ['main'], jobs }))));
        await t.close?.();
        ts['curl PUT'].push(await seconds(tgt.peerPut));
        const fetched = path.join(work, 'fetched');
        ts.fetch.push(await seconds(async () => void (await clone(tgt.url(round), fetched, { ...opts, noCheckout: true }))));
        await fs.rm(fetched, { recursive: true, force: true });
        const got = path.join(work, 'curl-got.bin');
        ts['curl GET'].push(await seconds(() => tgt.peerGet(got)));
        await fs.rm(got, { force: true });
        const cloned = path.join(work, 'cloned');
        ts.clone.push(await seconds(async () => void (await clone(tgt.url(round), cloned, opts))));
        await fs.rm(cloned, { recursive: true, force: true });
        ts['curl GET + cp'].push(
          await seconds(async () => {
            await tgt.peerGet(got);
            cp(got, path.join(work, 'curl-copy.bin'));
          }),
        );
        await fs.rm(got, { force: true });
        await fs.rm(path.join(work, 'curl-copy.bin'), { force: true });
        await tgt.cleanup(round);
        if (round < resumeRounds) {
          const env = {};
          const r = tgt.s3
            ? await killedPush(repo.root, () => `s3://bench/resume${round}`, (p) => ['--endpoint', `http://${p}`, '--region', 'us-east-1'], tgt.s3.endpoint, total, env)
            : await killedPush(repo.root, (p) => `http://${p}/resume${round}`, () => [], server.url, total, env);
          resumes.get(tgt.name)!.push(r);
          await tgt.cleanup(round);
          await fs.rm(path.join(work, 'served', `resume${round}`), { recursive: true, force: true });
        }
        loads.push(os.loadavg()[0].toFixed(2));
        const last = (k: (typeof names)[number]) => ts[k][ts[k].length - 1].toFixed(1);
        console.log(`  round ${round + 1} ${tgt.name}: ${names.map((n) => `${n} ${last(n)} s`).join(', ')} (load ${loads[loads.length - 1]})`);
      }
    }
    const mib = size / 2 ** 20;
    console.log(`medians of ${ROUNDS} (load average during the runs: ${loads.join(', ')}):`);
    for (const tgt of targets) {
      const m = Object.fromEntries(names.map((n) => [n, median(times.get(tgt.name)![n])])) as Record<(typeof names)[number], number>;
      const rate = (s: number) => `${(mib / s).toFixed(0)} MiB/s`;
      console.log(
        `  ${tgt.name}: push ${rate(m.push)} vs curl PUT ${rate(m['curl PUT'])} = ${(m['curl PUT'] / m.push).toFixed(2)}x; ` +
          `fetch ${rate(m.fetch)} vs curl GET ${rate(m['curl GET'])} = ${(m['curl GET'] / m.fetch).toFixed(2)}x; ` +
          `clone (with checkout) ${rate(m.clone)} vs curl GET + cp ${rate(m['curl GET + cp'])} = ${(m['curl GET + cp'] / m.clone).toFixed(2)}x`,
      );
      for (const r of resumes.get(tgt.name)!) {
        console.log(`    push killed at 50% (${r.before} of ${total} B on the wire), re-run sent ${r.resent} B = ${((100 * r.resent) / r.remaining - 100).toFixed(1)}% over the ${r.remaining} B that remained`);
      }
    }
  } finally {
    await server.stop();
    await moto?.stop();
    await fs.rm(work, { recursive: true, force: true });
  }
}

if (MB > 0) await main();
await operations();
