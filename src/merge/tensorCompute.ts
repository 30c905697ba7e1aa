/**
 * Computing one merged tensor, streaming: the inputs read block by block (a chunk's worth of
 * elements of each, decoded to float64), each method's extra passes over the tensor where it needs
 * a whole-tensor quantity (slerp's angle, TIES's magnitude threshold), the result rounded to the
 * tensor's dtype and handed to the writer block by block.
 */
import { alignedBytes, decodeElements } from '../diff/elementDecoder.js';
import type { ChunkReader } from '../store/chunkReader.js';
import { encodeFloats, floatBytes } from './dtypeRounding.js';
import type { TensorWriter } from './manifestBuilder.js';
import {
  addSlerpSums,
  DareMask,
  dareSeed,
  linearBlock,
  linearPairF32,
  linearPlan,
  slerpCoefficients,
  taskArithmeticBlock,
  trimBlock,
  type MergeMethod,
  type TrimThreshold,
} from './mergeMethods.js';
import { BlockReader, tensorBytes, type LogicalTensor } from './tensorSource.js';

/** One tensor to compute: the inputs' tensors in order, the base's for task methods, and the output's shape. */
export interface TensorJob {
  inputs: LogicalTensor[];
  base?: LogicalTensor;
  out: LogicalTensor;
}

export interface ComputeContext {
  method: MergeMethod;
  weights: number[];
  normalize: boolean;
  density: number;
  lambda: number;
  t: number;
  seed: number;
  reader: ChunkReader;
  chunkSize: number;
}

/** Reads every tensor of `list` block by block (a chunk's worth of elements) and calls `fn` with the blocks' bytes. */
async function eachRawBlock(ctx: ComputeContext, list: LogicalTensor[], fn: (n: number, blocks: Uint8Array[]) => void | Promise<void>): Promise<void> {
  const el = floatBytes(list[0].dtype);
  const blockElems = ctx.chunkSize / el;
  const readers = list.map((x) => new BlockReader(tensorBytes(ctx.reader, x)));
  try {
    for (let left = list[0].len / el; left > 0; ) {
      const n = Math.min(blockElems, left);
      await fn(n, await Promise.all(readers.map((r) => r.next(n * el))));
      left -= n;
    }
  } finally {
    for (const r of readers) await r.close();
  }
}

/** Reads every tensor of `list` block by block, decoded into `bufs`, and calls `fn`. */
async function eachBlock(ctx: ComputeContext, list: LogicalTensor[], bufs: Float64Array[], fn: (n: number) => void | Promise<void>): Promise<void> {
  await eachRawBlock(ctx, list, async (n, blocks) => {
    blocks.forEach((b, i) => decodeElements(b, list[0].dtype, bufs[i]));
    await fn(n);
  });
}

/** Float32 elements of a block, viewed in place where aligned (a plain chunk may sit at any offset of its pack's read). */
function float32s(b: Uint8Array, n: number): Float32Array {
  const a = alignedBytes(b, 4);
  return new Float32Array(a.buffer, a.byteOffset, n);
}

/** TIES's trim threshold for each model: two radix passes over the float32 keys of |delta|. */
async function trimThresholds(ctx: ComputeContext, p: TensorJob, bufs: Float64Array[]): Promise<TrimThreshold[]> {
  const models = p.inputs.length;
  const numel = p.out.len / floatBytes(p.out.dtype);
  if (ctx.density >= 1) return p.inputs.map(() => ({ key: 0, ties: 0, all: true }));
  const k = Math.floor(ctx.density * numel);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const list = [...p.inputs, p.base!];
  const pick = (hist: Uint32Array, need: number): { bin: number; above: number } => {
    let above = 0;
    for (let bin = 65535; bin >= 0; bin--) {
      if (above + hist[bin] >= need) return { bin, above };
      above += hist[bin];
    }
    return { bin: 0, above };
  };
  const hi = p.inputs.map(() => new Uint32Array(65536));
  await eachBlock(ctx, list, bufs, (n) => {
    const base = bufs[models];
    for (let m = 0; m < models; m++) {
      const x = bufs[m];
      const h = hi[m];
      for (let i = 0; i < n; i++) {
        f32[0] = Math.abs(x[i] - base[i]);
        h[u32[0] >>> 16]++;
      }
    }
  });
  const top = hi.map((h) => pick(h, k));
  const lo = p.inputs.map(() => new Uint32Array(65536));
  await eachBlock(ctx, list, bufs, (n) => {
    const base = bufs[models];
    for (let m = 0; m < models; m++) {
      const x = bufs[m];
      const h = lo[m];
      const want = top[m].bin;
      for (let i = 0; i < n; i++) {
        f32[0] = Math.abs(x[i] - base[i]);
        if (u32[0] >>> 16 === want) h[u32[0] & 0xffff]++;
      }
    }
  });
  return p.inputs.map((_, m) => {
    const need = k - top[m].above;
    const low = pick(lo[m], need);
    return { key: ((top[m].bin << 16) | low.bin) >>> 0, ties: need - low.above, all: false };
  });
}

/** Computes one merged tensor into `w`; returns how many of its elements are NaN. */
export async function computeTensor(
  ctx: ComputeContext,
  p: TensorJob,
  w: TensorWriter,
  onBytes: (n: number) => void,
): Promise<number> {
  const dtype = p.out.dtype;
  const el = floatBytes(dtype);
  const blockElems = ctx.chunkSize / el;
  const models = p.inputs.length;
  const list = p.base ? [...p.inputs, p.base] : p.inputs;
  let nans = 0;
  /**
   * A float32 tensor and two terms (two models, or slerp's second pass): read straight from the
   * stored bytes and written straight into the output's (linearPairF32), with no float64 blocks.
   */
  const pairF32 = async (weights: readonly number[], normalize: boolean): Promise<boolean> => {
    const { terms, divisor } = linearPlan(weights, normalize);
    if (dtype !== 'F32' || terms.length !== 2) return false;
    const [ka, kb] = terms;
    await eachRawBlock(ctx, [list[ka], list[kb]], async (n, [a, b]) => {
      const bytes = new Uint8Array(n * 4);
      const out = new Float32Array(bytes.buffer, 0, n);
      nans += linearPairF32(float32s(a, n), float32s(b, n), weights[ka], weights[kb], divisor, n, out);
      await w.write(bytes);
      onBytes(n * 4);
    });
    return true;
  };
  // the common case first, before any float64 block is allocated
  if (ctx.method === 'linear' && (await pairF32(ctx.weights, ctx.normalize))) {
    await w.end();
    return nans;
  }
  const bufs = list.map(() => new Float64Array(blockElems));
  const res = new Float64Array(blockElems);
  const emit = async (n: number) => {
    const bytes = new Uint8Array(n * el);
    nans += encodeFloats(res, n, dtype, bytes);
    await w.write(bytes);
    onBytes(n * el);
  };
  if (ctx.method === 'linear') {
    await eachBlock(ctx, list, bufs, async (n) => {
      linearBlock(bufs, ctx.weights, ctx.normalize, n, res);
      await emit(n);
    });
  } else if (ctx.method === 'slerp') {
    const sums = { aa: 0, bb: 0, ab: 0 };
    if (ctx.t !== 0 && ctx.t !== 1) await eachBlock(ctx, list, bufs, (n) => addSlerpSums(bufs[0], bufs[1], n, sums));
    const c = slerpCoefficients(sums, ctx.t);
    if (!(await pairF32([c.s0, c.s1], false))) await eachBlock(ctx, list, bufs, async (n) => {
      linearBlock(bufs, [c.s0, c.s1], false, n, res);
      await emit(n);
    });
  } else {
    const ties = ctx.method === 'ties';
    const dare = ctx.method === 'dare-linear' || ctx.method === 'dare-ties';
    const thresholds = ties ? await trimThresholds(ctx, p, bufs) : undefined;
    const tieState = p.inputs.map(() => ({ tiesKept: 0 }));
    const masks = dare && ctx.density < 1 ? p.inputs.map((_, m) => new DareMask(dareSeed(ctx.seed, m, p.out.name), ctx.density)) : undefined;
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    const deltas = bufs.slice(0, models);
    await eachBlock(ctx, list, bufs, async (n) => {
      const base = bufs[models];
      for (let m = 0; m < models; m++) {
        const d = deltas[m];
        for (let i = 0; i < n; i++) d[i] -= base[i];
        if (thresholds) trimBlock(d, n, thresholds[m], tieState[m], f32, u32);
        masks?.[m].apply(d, n, ctx.density);
      }
      taskArithmeticBlock(base, deltas, ctx.weights, { consensus: ties || ctx.method === 'dare-ties', normalize: ctx.normalize, lambda: ctx.lambda }, n, res);
      await emit(n);
    });
  }
  await w.end();
  return nans;
}
