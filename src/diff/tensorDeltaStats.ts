/**
 * Streaming statistics of the difference between two versions of one tensor, A and B.
 *
 * Diff reads only the chunks whose ids differ. The statistics that need all of A and B (||A||,
 * ||B||, A·B) get the contribution of an equal chunk from its sum of squares: over an equal
 * chunk A = B, so ||A_c||² = ||B_c||² = A_c·B_c. The commit path computes that sum with
 * `chunkSumSquares` while the chunk is in memory and stores it in the manifest, next to the chunk
 * id; diff passes it to `addEqual` and never reads the chunk.
 *
 * Definitions (docs/diff-json.md is the reference):
 * - an element is changed when its bytes differ: -0 vs +0 is a change (of size 0); a NaN with
 *   the same bits on both sides is not;
 * - the delta statistics, A·B and cosine run over the positions where both A and B are finite;
 *   ||A|| over the finite elements of A, ||B|| over those of B;
 * - meanAbsDelta divides by every element of the tensor, changed or not;
 * - nanAppeared counts positions where B is NaN and A is not; infAppeared where B is ±Inf and A
 *   is not ±Inf.
 */
import { CkptError } from '../core/errors.js';
import { alignedBytes, decodeElements, decodedElementBytes, decodeTable } from './elementDecoder.js';

export interface NumericTensorStats {
  kind: 'numeric';
  dtype: string;
  elements: number;
  changed: number;
  changedFraction: number;
  maxAbsDelta: number;
  meanAbsDelta: number;
  l2Delta: number;
  /** l2Delta / normA; 0 when both are 0, null when only A is 0 (an unbounded change). */
  relL2: number | null;
  /** (A·B) / (normA normB), in [-1, 1]; null when either norm is 0. */
  cosine: number | null;
  normA: number;
  normB: number;
  nanAppeared: number;
  infAppeared: number;
}

/** For dtypes without element decoding (GGML block types, sub-byte floats, complex). */
export interface ByteTensorStats {
  kind: 'bytes';
  dtype: string;
  bytes: number;
  bytesChanged: number;
  changedFraction: number;
}

export type TensorStats = NumericTensorStats | ByteTensorStats;

/** Elements per pass: bounds the scratch memory, and plain float64 sums over this few terms lose nothing measurable before they are added with compensation. */
const SLICE = 4096;

/** Neumaier's compensated sum: the running total stays exact to float64 rounding however many slices it absorbs. */
class CompensatedSum {
  private sum = 0;
  private comp = 0;
  add(x: number): void {
    const t = this.sum + x;
    this.comp += Math.abs(this.sum) >= Math.abs(x) ? this.sum - t + x : x - t + this.sum;
    this.sum = t;
  }
  get value(): number {
    return this.sum + this.comp;
  }
}

function elementBytes(dtype: string, length: number): number {
  const size = decodedElementBytes(dtype);
  if (size === undefined) throw new CkptError('E_USAGE', `dtype ${dtype} has no element values`);
  if (length % size !== 0) {
    throw new CkptError('E_USAGE', `${length} bytes is not a whole number of ${dtype} elements`, { dtype, length });
  }
  return size;
}

const squareTables = new Map<string, Float64Array>();

/**
 * The square of every finite value of a 16-bit float dtype, 0 for NaN and ±Inf. Commit sums every
 * chunk it stores: one lookup per element runs about 2.5x faster than decoding and then squaring.
 * A 16-bit value's square is exact in float64, so the sums equal the decoding path's bit for bit.
 */
function squareTable(dtype: string): Float64Array {
  let t = squareTables.get(dtype);
  if (!t) {
    const values = decodeTable(dtype);
    t = new Float64Array(65536);
    for (let i = 0; i < 65536; i++) {
      const x = values[i];
      t[i] = x - x === 0 ? x * x : 0;
    }
    squareTables.set(dtype, t);
  }
  return t;
}

// Apart from chunkSumSquares, so the JIT compiles the hot loop on its own.
function sumLookups(table: Float64Array, codes: Uint16Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) s += table[codes[i]];
  return s;
}

function sumSquares16(bytes: Uint8Array, dtype: string, n: number): number {
  const table = squareTable(dtype);
  const src = alignedBytes(bytes, 2);
  const codes = new Uint16Array(src.buffer, src.byteOffset, n);
  const total = new CompensatedSum();
  for (let start = 0; start < n; start += SLICE) total.add(sumLookups(table, codes, start, Math.min(n, start + SLICE)));
  return total.value;
}

// Apart from chunkSumSquares, so the JIT compiles the hot loop on its own.
function sumFiniteSquares(v: Float32Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) {
    const x = v[i];
    if (x - x === 0) s += x * x;
  }
  return s;
}

/**
 * F32 read in place rather than decoded into float64 first: the same sums, slice by slice in the
 * same order, bit for bit (a float32's square is exact in float64).
 */
function sumSquares32(bytes: Uint8Array, n: number): number {
  const src = alignedBytes(bytes, 4);
  const v = new Float32Array(src.buffer, src.byteOffset, n);
  const total = new CompensatedSum();
  for (let start = 0; start < n; start += SLICE) total.add(sumFiniteSquares(v, start, Math.min(n, start + SLICE)));
  return total.value;
}

/**
 * Sum of squares of the finite elements of one chunk of a tensor, in float64 (NaN and ±Inf are
 * left out, as diff leaves them out of ||A||). Throws for dtypes without element values: their
 * manifests store no sums.
 */
export function chunkSumSquares(bytes: Uint8Array, dtype: string): number {
  const size = elementBytes(dtype, bytes.byteLength);
  const n = bytes.byteLength / size;
  if (dtype === 'F16' || dtype === 'BF16') return sumSquares16(bytes, dtype, n);
  if (dtype === 'F32') return sumSquares32(bytes, n);
  const buf = new Float64Array(Math.min(SLICE, n));
  const total = new CompensatedSum();
  for (let start = 0; start < n; start += SLICE) {
    const m = Math.min(SLICE, n - start);
    const v = decodeElements(bytes.subarray(start * size, (start + m) * size), dtype, buf);
    let s = 0;
    for (let i = 0; i < m; i++) {
      const x = v[i];
      if (x - x === 0) s += x * x;
    }
    total.add(s);
  }
  return total.value;
}

/** Marks in `out[i]` whether element i of a and b has different bits. */
function markDiffering(a: Uint8Array, b: Uint8Array, size: number, n: number, out: Uint8Array): number {
  let count = 0;
  if (size === 1) {
    for (let i = 0; i < n; i++) count += out[i] = a[i] !== b[i] ? 1 : 0;
    return count;
  }
  const align = Math.min(size, 4);
  const aa = alignedBytes(a, align);
  const bb = alignedBytes(b, align);
  if (size === 2) {
    const ua = new Uint16Array(aa.buffer, aa.byteOffset, n);
    const ub = new Uint16Array(bb.buffer, bb.byteOffset, n);
    for (let i = 0; i < n; i++) count += out[i] = ua[i] !== ub[i] ? 1 : 0;
    return count;
  }
  const words = size / 4;
  const ua = new Uint32Array(aa.buffer, aa.byteOffset, n * words);
  const ub = new Uint32Array(bb.buffer, bb.byteOffset, n * words);
  if (words === 1) {
    for (let i = 0; i < n; i++) count += out[i] = ua[i] !== ub[i] ? 1 : 0;
  } else {
    for (let i = 0; i < n; i++) {
      const j = 2 * i;
      count += out[i] = ua[j] !== ub[j] || ua[j + 1] !== ub[j + 1] ? 1 : 0;
    }
  }
  return count;
}

export class TensorDeltaStats {
  readonly dtype: string;
  private readonly size: number | undefined;
  private bytes = 0;
  private changed = 0;
  private maxAbs = 0;
  private readonly sumAbs = new CompensatedSum();
  private readonly sumD2 = new CompensatedSum();
  private readonly sumA2 = new CompensatedSum();
  private readonly sumB2 = new CompensatedSum();
  private readonly dot = new CompensatedSum();
  private nanAppeared = 0;
  private infAppeared = 0;
  private scratch: { a: Float64Array; b: Float64Array; diff: Uint8Array } | undefined;

  constructor(dtype: string) {
    this.dtype = dtype;
    this.size = decodedElementBytes(dtype);
  }

  /** True when finalize gives element statistics; false when it gives byte counts only. */
  get numeric(): boolean {
    return this.size !== undefined;
  }

  /**
   * A run of `byteLength` bytes known equal on both sides (equal chunk ids), never read.
   * `sumSquares` is the run's `chunkSumSquares`; required for numeric dtypes.
   */
  addEqual(byteLength: number, sumSquares?: number): void {
    if (this.size === undefined) {
      this.bytes += byteLength;
      return;
    }
    elementBytes(this.dtype, byteLength);
    if (sumSquares === undefined) {
      throw new CkptError('E_USAGE', `an equal ${this.dtype} chunk needs its sum of squares`);
    }
    this.bytes += byteLength;
    this.sumA2.add(sumSquares);
    this.sumB2.add(sumSquares);
    this.dot.add(sumSquares);
  }

  /** The same stretch of the tensor in A and in B. Any length of whole elements, in tensor order or not. */
  addPair(a: Uint8Array, b: Uint8Array): void {
    if (a.byteLength !== b.byteLength) {
      throw new CkptError('E_USAGE', `paired runs differ in length: ${a.byteLength} vs ${b.byteLength}`);
    }
    if (this.size === undefined) {
      this.bytes += a.byteLength;
      let c = 0;
      for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) c++;
      this.changed += c;
      return;
    }
    const size = elementBytes(this.dtype, a.byteLength);
    const n = a.byteLength / size;
    this.bytes += a.byteLength;
    const s = (this.scratch ??= {
      a: new Float64Array(SLICE),
      b: new Float64Array(SLICE),
      diff: new Uint8Array(SLICE),
    });
    for (let start = 0; start < n; start += SLICE) {
      const m = Math.min(SLICE, n - start);
      const sa = a.subarray(start * size, (start + m) * size);
      const sb = b.subarray(start * size, (start + m) * size);
      this.changed += markDiffering(sa, sb, size, m, s.diff);
      this.addSlice(decodeElements(sa, this.dtype, s.a), decodeElements(sb, this.dtype, s.b), s.diff, m);
    }
  }

  private addSlice(va: Float64Array, vb: Float64Array, diff: Uint8Array, m: number): void {
    let a2 = 0;
    let b2 = 0;
    let ab = 0;
    let d2 = 0;
    let dAbs = 0;
    let max = this.maxAbs;
    for (let i = 0; i < m; i++) {
      const x = va[i];
      const y = vb[i];
      // x - x is 0 exactly when x is finite (NaN - NaN and Inf - Inf are NaN).
      const fx = x - x === 0;
      const fy = y - y === 0;
      if (fx) a2 += x * x;
      if (fy) b2 += y * y;
      if (fx && fy) {
        ab += x * y;
        const d = Math.abs(y - x);
        d2 += d * d;
        dAbs += d;
        if (d > max) max = d;
      } else if (diff[i]) {
        if (y !== y && x === x) this.nanAppeared++;
        if ((y === Infinity || y === -Infinity) && x !== Infinity && x !== -Infinity) this.infAppeared++;
      }
    }
    this.maxAbs = max;
    this.sumA2.add(a2);
    this.sumB2.add(b2);
    this.dot.add(ab);
    this.sumD2.add(d2);
    this.sumAbs.add(dAbs);
  }

  finalize(): TensorStats {
    if (this.size === undefined) {
      return {
        kind: 'bytes',
        dtype: this.dtype,
        bytes: this.bytes,
        bytesChanged: this.changed,
        changedFraction: this.bytes ? this.changed / this.bytes : 0,
      };
    }
    const elements = this.bytes / this.size;
    const l2Delta = Math.sqrt(this.sumD2.value);
    const normA = Math.sqrt(this.sumA2.value);
    const normB = Math.sqrt(this.sumB2.value);
    let cosine: number | null = null;
    // Divide one norm at a time: normA * normB can overflow or underflow where the ratio does not.
    if (normA > 0 && normB > 0) cosine = Math.max(-1, Math.min(1, this.dot.value / normA / normB));
    return {
      kind: 'numeric',
      dtype: this.dtype,
      elements,
      changed: this.changed,
      changedFraction: elements ? this.changed / elements : 0,
      maxAbsDelta: this.maxAbs,
      meanAbsDelta: elements ? this.sumAbs.value / elements : 0,
      l2Delta,
      relL2: normA > 0 ? l2Delta / normA : l2Delta === 0 ? 0 : null,
      cosine,
      normA,
      normB,
      nanAppeared: this.nanAppeared,
      infAppeared: this.infAppeared,
    };
  }
}
