/**
 * `node dist/bench/view.js`: `ckpt view` at scale. A store of 1,000 commits × 300 tensors of
 * 1 MiB (one chunk each) is synthesized through the library: manifests with chunk ids and
 * per-chunk sums of squares, trees, commits on three branches with metrics, and a chunk index
 * listing every chunk (sizes as a real pack would hold them) but no pack, so no GBs are
 * written. Every tensor changes in every commit: the worst case for the page's size and for the
 * per-commit storage figures. Measured, interleaved over rounds, medians:
 *
 *   write   buildViewData + renderViewHtml + writing the file, in process (past start-up): wall
 *           time, and CPU time (what it costs apart from waiting for a machine other jobs share)
 *   cli     `ckpt view --no-read` as a user runs it, start-up included
 *   size    bytes of the page
 *   render  Chromium: navigation to the page having drawn everything (body[data-ready]): wall
 *           time, and the renderer main thread's busy time (DevTools TaskDuration)
 *
 * The pages are bounds (`--no-read`): the store holds no chunk to read. An exact page also runs
 * diff on every parent pair, reading the changed chunks: that cost follows the data, not the page.
 * CKPT_BENCH_COMMITS (default 1000), CKPT_BENCH_TENSORS (300), CKPT_BENCH_ROUNDS (3);
 * CKPT_BENCH_KEEP=1 keeps the store and prints where, CKPT_BENCH_STORE=DIR measures one kept.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seededRandom } from '../src/core/seededRandom.js';
import type { ObjectId } from '../src/core/objectId.js';
import type { ChunkRef, Commit, Manifest, ManifestTensorSegment, Tree } from '../src/core/objects.js';
import { encodeIndexFile } from '../src/store/chunkIndex.js';
import type { ChunkRecord } from '../src/store/packFormat.js';
import { Repository } from '../src/repo/repository.js';
import { renderViewHtml } from '../src/view/htmlWriter.js';
import { buildViewData } from '../src/view/viewData.js';
import { Chromium, chromiumPath } from './chromium.js';

const ckptBin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'ckpt');
const COMMITS = Number(process.env.CKPT_BENCH_COMMITS ?? 1000);
const TENSORS = Number(process.env.CKPT_BENCH_TENSORS ?? 300);
const ROUNDS = Number(process.env.CKPT_BENCH_ROUNDS ?? 3);
const CHUNKS_PER_TENSOR = 1;
const CHUNK = 1 << 20;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function tensorNames(n: number): string[] {
  const parts = ['attn.q', 'attn.k', 'attn.v', 'attn.o', 'attn.bias', 'mlp.up', 'mlp.gate', 'mlp.down', 'norm1', 'norm2'];
  const out: string[] = [];
  for (let l = 0; out.length < n; l++) for (const p of parts) if (out.length < n) out.push(`layers.${l}.${p}.weight`);
  return out;
}

/** main gets 80% of the commits, two branches forked from it the rest. */
async function synthesize(dir: string): Promise<void> {
  const repo = await Repository.init(dir, { author: 'bench@example' });
  const rand = seededRandom(7);
  const hex = () => {
    let s = '';
    for (let i = 0; i < 8; i++) s += Math.floor(rand() * 2 ** 32).toString(16).padStart(8, '0');
    return s as ObjectId;
  };
  const names = tensorNames(TENSORS);
  const records: ChunkRecord[] = [];
  // each tensor's per-chunk sums of squares drift a little every step
  const sumsq = names.map(() => Array.from({ length: CHUNKS_PER_TENSOR }, () => 1000 + rand() * 100));
  const state = (step: number): Manifest => {
    const segments: ManifestTensorSegment[] = names.map((name, t) => {
      sumsq[t] = sumsq[t].map((v) => v * (1 + (rand() - 0.5) * 1e-3));
      const chunks: ChunkRef[] = sumsq[t].map(() => {
        const id = hex();
        records.push({ id, offset: records.length * CHUNK, stored: Math.round(CHUNK * (0.9 + rand() * 0.05)), raw: CHUNK, codec: 1, planes: 0 });
        return [id, CHUNK];
      });
      return { t: 'tensor', name, dtype: 'F32', shape: [CHUNKS_PER_TENSOR * 512, 512], len: CHUNKS_PER_TENSOR * CHUNK, hash: hex(), chunks, sumsq: [...sumsq[t]] };
    });
    return { type: 'manifest', format: 'safetensors', size: TENSORS * CHUNKS_PER_TENSOR * CHUNK, hash: hex(), chunkSize: CHUNK, segments, info: { step } };
  };
  let time = Date.UTC(2026, 0, 1);
  const commitOn = async (parent: ObjectId | undefined, step: number, branch: string): Promise<ObjectId> => {
    const m = state(step);
    const tree: Tree = { type: 'tree', files: { 'model.safetensors': { manifest: await repo.store.meta.put(m), size: m.size, hash: m.hash, format: m.format } } };
    const loss = 3 / Math.log(step + 10) + (branch === 'main' ? 0 : 0.05) + rand() * 0.01;
    const c: Commit = {
      type: 'commit',
      tree: await repo.store.meta.put(tree),
      parents: parent ? [parent] : [],
      message: `${branch} step ${step}`,
      author: repo.author,
      time: (time += 60_000),
      meta: { step, metrics: { loss, accuracy: 1 - loss / 4, lr: 1e-3 * Math.exp(-step / 50_000) } },
    };
    return repo.store.meta.put(c);
  };
  const mainCount = Math.round(COMMITS * 0.8);
  const fork = Math.round(mainCount / 2);
  const mainIds: ObjectId[] = [];
  let tip: ObjectId | undefined;
  for (let i = 0; i < mainCount; i++) mainIds.push((tip = await commitOn(tip, (i + 1) * 100, 'main')));
  await repo.store.refs.cas('refs/heads/main', null, tip!, 'bench');
  const rest = COMMITS - mainCount;
  for (const [k, name] of ['lr-sweep', 'finetune'].entries()) {
    let b: ObjectId | undefined = mainIds[fork + k * 50];
    const n = k === 0 ? Math.floor(rest / 2) : rest - Math.floor(rest / 2);
    for (let i = 0; i < n; i++) b = await commitOn(b, (fork + k * 50 + i + 2) * 100, name);
    await repo.store.refs.cas(`refs/heads/${name}`, null, b!, 'bench');
  }
  await repo.store.refs.cas('refs/tags/release', null, mainIds[mainCount - 1], 'bench');
  const { id, bytes } = encodeIndexFile(hex(), records.length * CHUNK, records);
  await fs.writeFile(path.join(repo.store.indexDir, `${id}.idx`), bytes);
}

async function main(): Promise<void> {
  const kept = process.env.CKPT_BENCH_STORE;
  const dir = kept ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-bench-view-')));
  try {
    if (!kept) {
      const t0 = performance.now();
      await synthesize(dir);
      process.stdout.write(`synthesized ${COMMITS} commits × ${TENSORS} tensors in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})\n`);
    }
    const repo = await Repository.open(dir);
    const browser = chromiumPath() ? await Chromium.launch() : undefined;
    const write: number[] = [];
    const writeCpu: number[] = [];
    const busy: number[] = [];
    const cli: number[] = [];
    const render: number[] = [];
    let size = 0;
    let pairs = 0;
    const page = path.join(dir, 'view.html');
    for (let r = 0; r < ROUNDS; r++) {
      const w0 = performance.now();
      const cpu0 = process.cpuUsage();
      const data = await buildViewData(repo, { read: false });
      const { html } = renderViewHtml(data);
      await fs.writeFile(page, html);
      write.push(performance.now() - w0);
      const cpu = process.cpuUsage(cpu0);
      writeCpu.push((cpu.user + cpu.system) / 1000);
      size = Buffer.byteLength(html);
      pairs = data.pairs.length;

      const c0 = performance.now();
      const res = spawnSync(process.execPath, [ckptBin, 'view', '--no-read', '-q', '-o', path.join(dir, 'cli.html')], { cwd: dir, encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`ckpt view failed: ${res.stderr}`);
      cli.push(performance.now() - c0);

      if (browser) {
        const tab = await browser.tab(1400, 1000);
        render.push(await tab.open(`file://${page}`, undefined, 60_000));
        busy.push((await tab.busySeconds()) * 1000);
        if (tab.log.errors.length || tab.log.requests.length) throw new Error(`page errors ${JSON.stringify(tab.log)}`);
        await tab.close();
      }
    }
    await browser?.close();
    const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
    process.stdout.write(
      `view of ${COMMITS} commits × ${TENSORS} tensors (${pairs} parent pairs, all tensors changing), medians of ${ROUNDS}, load average ${load}:\n` +
        `  write (in process, past start-up)  ${(median(write) / 1000).toFixed(2)} s   [${write.map((x) => (x / 1000).toFixed(2)).join(', ')}]\n` +
        `    of which CPU                     ${(median(writeCpu) / 1000).toFixed(2)} s   [${writeCpu.map((x) => (x / 1000).toFixed(2)).join(', ')}]\n` +
        `  ckpt view --no-read (with start-up) ${(median(cli) / 1000).toFixed(2)} s   [${cli.map((x) => (x / 1000).toFixed(2)).join(', ')}]\n` +
        `  page size                          ${(size / 1e6).toFixed(2)} MB (${size} bytes)\n` +
        (render.length
          ? `  Chromium render (to drawn)         ${(median(render) / 1000).toFixed(2)} s   [${render.map((x) => (x / 1000).toFixed(2)).join(', ')}]\n` +
            `    renderer main thread busy        ${(median(busy) / 1000).toFixed(2)} s   [${busy.map((x) => (x / 1000).toFixed(2)).join(', ')}]\n`
          : '  Chromium render: no chromium found\n'),
    );
  } finally {
    if (!process.env.CKPT_BENCH_KEEP && !kept) await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench/view failed: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
