/**
 * Micro-benchmark of the chunk codecs: byte-plane throughput, and per data kind and zstd level the
 * stored ratio and encode / decode throughput with several chunks in flight, as the store runs
 * them. BLAKE3 of the same chunks is measured in the same run as the peer: every chunk is hashed
 * anyway, so the cost of a codec reads best as a multiple of it.
 *
 *   npx tsc -p . && node dist/bench/codecs.js [MiB per data set, default 64]
 */
import { objectId } from '../src/core/objectId.js';
import { joinPlanes, splitPlanes, undoZigzagDelta, zigzagDelta } from '../src/store/bytePlanes.js';
import { decodeChunk, encodeChunk, type EncodedChunk } from '../src/store/chunkCodec.js';
import { seededRandom as prng } from '../src/core/seededRandom.js';

const MiB = 1 << 20;
const CHUNK = MiB;
const IN_FLIGHT = 4;
const total = Number(process.argv[2] ?? 64) * MiB;


function gaussianF32(n: number, seed: number): Float32Array {
  const rnd = prng(seed);
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = 0.02 * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  return f;
}

function toBF16(f: Float32Array): Uint8Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  const h = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) h[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) & 0xffff;
  return new Uint8Array(h.buffer);
}

const chunksOf = (b: Uint8Array) => Array.from({ length: Math.ceil(b.length / CHUNK) }, (_, i) => b.subarray(i * CHUNK, (i + 1) * CHUNK));

async function pool<T, R>(items: T[], fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return out;
}

const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;
const mbps = (bytes: number, s: number) => (bytes / s / 1e6).toFixed(0);

async function main(): Promise<void> {
  const f32 = gaussianF32(total / 4, 1);
  // The next training step: every weight moved by about 1e-4 of itself, as AdamW at lr ~1e-4 does.
  const rnd = prng(2);
  const f32next = f32.map((x) => x * (1 + 1e-4 * (rnd() - 0.5)));
  const random = new Uint8Array(total);
  for (let i = 0; i < total; i += 4) new DataView(random.buffer).setUint32(i, (rnd() * 2 ** 32) >>> 0);
  const sets: { name: string; dtype?: string; data: Uint8Array; base?: Uint8Array }[] = [
    { name: 'F32 gaussian', dtype: 'F32', data: new Uint8Array(f32.buffer) },
    { name: 'BF16 gaussian', dtype: 'BF16', data: toBF16(f32.subarray(0, total / 2)) },
    { name: 'random bytes', dtype: 'F32', data: random },
    { name: 'F32 next step (+base)', dtype: 'F32', data: new Uint8Array(f32next.buffer), base: new Uint8Array(f32.buffer) },
  ];

  console.log(`byte planes, 1 MiB chunks of ${total / MiB} MiB, single thread`);
  for (const planes of [2, 4, 8]) {
    const chunks = chunksOf(new Uint8Array(f32.buffer));
    for (const c of chunks.slice(0, 8)) joinPlanes(splitPlanes(c, planes), planes);
    let t0 = process.hrtime.bigint();
    const split = chunks.map((c) => splitPlanes(c, planes));
    const ts = seconds(t0);
    t0 = process.hrtime.bigint();
    for (const c of split) joinPlanes(c, planes);
    const tj = seconds(t0);
    console.log(`  planes=${planes}  split ${(total / ts / 1e9).toFixed(2)} GB/s   join ${(total / tj / 1e9).toFixed(2)} GB/s`);
  }
  {
    const cur = chunksOf(new Uint8Array(f32next.buffer));
    const base = chunksOf(new Uint8Array(f32.buffer));
    let t0 = process.hrtime.bigint();
    const d = cur.map((c, i) => zigzagDelta(c, base[i], 4));
    const tf = seconds(t0);
    t0 = process.hrtime.bigint();
    d.forEach((c, i) => undoZigzagDelta(c, base[i], 4));
    const tu = seconds(t0);
    console.log(`  zigzag delta F32  forward ${(total / tf / 1e9).toFixed(2)} GB/s   inverse ${(total / tu / 1e9).toFixed(2)} GB/s`);
  }

  const hashChunks = chunksOf(random);
  let t0 = process.hrtime.bigint();
  for (const c of hashChunks) objectId('chunk', c);
  const hashS = seconds(t0);
  console.log(`\npeer: BLAKE3 chunk ids ${mbps(total, hashS)} MB/s (one thread)\n`);

  const rows: string[][] = [['data', 'level', 'codecs chosen', 'ratio', 'encode MB/s', 'x BLAKE3 time', 'decode MB/s']];
  for (const set of sets) {
    const chunks = chunksOf(set.data);
    const bases = set.base ? chunksOf(set.base) : undefined;
    for (const level of [1, 3]) {
      const opts = { mode: 'auto' as const, dtype: set.dtype, level };
      await pool(chunks.slice(0, 4), (c, i) => encodeChunk(c, { ...opts, base: bases?.[i] }));
      t0 = process.hrtime.bigint();
      const enc: EncodedChunk[] = await pool(chunks, (c, i) => encodeChunk(c, { ...opts, base: bases?.[i] }));
      const encS = seconds(t0);
      const stored = enc.reduce((s, e) => s + e.data.length, 0);
      const used = [...new Set(enc.map((e) => e.codec))].sort().join(',');
      t0 = process.hrtime.bigint();
      await pool(enc, (e, i) => decodeChunk(e, chunks[i].length, bases?.[i]));
      const decS = seconds(t0);
      const hashRel = encS / ((hashS * set.data.length) / total);
      rows.push([set.name, String(level), used, (stored / set.data.length).toFixed(4), mbps(set.data.length, encS), hashRel.toFixed(2), mbps(set.data.length, decS)]);
    }
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) console.log(r.map((v, c) => (c < 3 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '));
  console.log(`\ncodecs: 0 none, 1 zstd, 2 planes+zstd, 3 XOR delta, 4 zigzag delta; ${IN_FLIGHT} chunks in flight; ratio = stored / raw`);
}

await main();
