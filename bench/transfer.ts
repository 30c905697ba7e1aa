/**
 * Moving one pack through each transport, against `cp` of the same file in the same run
 * (interleaved rounds, medians). Ratios are cp time / transport time: 1 means as fast as a
 * plain copy, although every transport also hashes every byte and fsyncs, and GNU cp may copy in
 * the kernel (copy_file_range) without the bytes ever reaching user space: a hard peer.
 *
 *   node dist/bench/transfer.js        CKPT_BENCH_MB (default 256), CKPT_BENCH_ROUNDS (default 3)
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { objectHasher } from '../src/core/objectId.js';
import { packKey } from '../src/store/objectKeys.js';
import { DirectoryTransport } from '../src/remote/directoryTransport.js';
import { HttpTransport } from '../src/remote/httpTransport.js';
import { startStoreServer } from '../src/remote/storeServer.js';
import type { Transport } from '../src/remote/transport.js';

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
    const transports: [string, (round: number) => Promise<Transport>][] = [
      ['directory', async (r) => new DirectoryTransport(path.join(work, `dir-${r}`))],
      ['http (loopback)', async (r) => new HttpTransport(`${server.url}/repo-${r}`)],
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

await main();
