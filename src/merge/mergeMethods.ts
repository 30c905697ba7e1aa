/**
 * The numerics of each merge method, on blocks of float64 values (one block per input, the same
 * elements of one tensor). Pure functions: no I/O, no allocation in the loops. The formulas are
 * mergekit's (docs/merge.md); the whole-tensor quantities some methods need (slerp's angle, TIES's
 * magnitude threshold) are computed by the caller in an earlier pass and passed in.
 */
import { mulberry32 } from '../core/seededRandom.js';

export type MergeMethod = 'linear' | 'slerp' | 'task-arithmetic' | 'ties' | 'dare-linear' | 'dare-ties';

export const MERGE_METHODS: readonly MergeMethod[] = ['linear', 'slerp', 'task-arithmetic', 'ties', 'dare-linear', 'dare-ties'];

/** Methods that add task vectors (model - base) to a base. */
export function usesBase(m: MergeMethod): boolean {
  return m !== 'linear' && m !== 'slerp';
}

/** mergekit's default for `normalize` (divide by the sum of the weights that contributed). */
export function defaultNormalize(m: MergeMethod): boolean {
  return m === 'linear' || m === 'ties';
}

/** The terms linearBlock adds (inputs of nonzero weight) and what it divides by. */
export function linearPlan(weights: readonly number[], normalize: boolean): { terms: number[]; divisor: number } {
  let divisor = 0;
  for (const w of weights) divisor += w;
  if (!normalize || Math.abs(divisor) < 1e-8) divisor = 1;
  const terms: number[] = [];
  for (let k = 0; k < weights.length; k++) if (weights[k] !== 0) terms.push(k);
  return { terms, divisor };
}

/**
 * Weighted sum, divided by the sum of the weights when `normalize`. Terms with weight 0 are left
 * out (so weights 1,0 give the first model bit for bit, -0 included), and the sum starts from the
 * first term rather than from +0 for the same reason.
 */
export function linearBlock(inputs: Float64Array[], weights: readonly number[], normalize: boolean, n: number, out: Float64Array): void {
  const { terms, divisor } = linearPlan(weights, normalize);
  if (terms.length === 0) {
    out.fill(0, 0, n);
    return;
  }
  const first = inputs[terms[0]];
  const w0 = weights[terms[0]];
  if (terms.length === 2) {
    linearPair(first, inputs[terms[1]], w0, weights[terms[1]], divisor, n, out);
    return;
  }
  for (let i = 0; i < n; i++) out[i] = w0 * first[i];
  for (let j = 1; j < terms.length; j++) {
    const x = inputs[terms[j]];
    const w = weights[terms[j]];
    for (let i = 0; i < n; i++) out[i] += w * x[i];
  }
  if (divisor !== 1) for (let i = 0; i < n; i++) out[i] /= divisor;
}

/** The common case of two terms in one pass: the same operations in the same order as the loops above. */
function linearPair(a: Float64Array, b: Float64Array, w0: number, w1: number, divisor: number, n: number, out: Float64Array): void {
  if (divisor === 1) for (let i = 0; i < n; i++) out[i] = w0 * a[i] + w1 * b[i];
  else for (let i = 0; i < n; i++) out[i] = (w0 * a[i] + w1 * b[i]) / divisor;
}

/**
 * linearPair on float32 inputs into a float32 output (merge's fused path), returning how many
 * results are NaN: the same operations in float64, each result rounded once to float32 on the
 * store, so the same bits as decoding to float64, linearPair, and rounding afterwards. A function
 * of its own so that each loop sees one array type.
 */
export function linearPairF32(a: Float32Array, b: Float32Array, w0: number, w1: number, divisor: number, n: number, out: Float32Array): number {
  let nans = 0;
  if (divisor === 1) {
    for (let i = 0; i < n; i++) {
      const r = w0 * a[i] + w1 * b[i];
      out[i] = r;
      if (r !== r) nans++;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const r = (w0 * a[i] + w1 * b[i]) / divisor;
      out[i] = r;
      if (r !== r) nans++;
    }
  }
  return nans;
}

/** Whole-tensor sums slerp needs: both norms and the dot product. */
export interface SlerpSums {
  aa: number;
  bb: number;
  ab: number;
}

export function addSlerpSums(a: Float64Array, b: Float64Array, n: number, s: SlerpSums): void {
  let aa = 0;
  let bb = 0;
  let ab = 0;
  for (let i = 0; i < n; i++) {
    aa += a[i] * a[i];
    bb += b[i] * b[i];
    ab += a[i] * b[i];
  }
  s.aa += aa;
  s.bb += bb;
  s.ab += ab;
}

/** mergekit's threshold above which the two directions count as colinear and slerp is a lerp. */
export const DOT_THRESHOLD = 0.9995;

/**
 * The two coefficients of slerp for a tensor: result = s0 * a + s1 * b. Directions are normalized
 * with mergekit's eps (a norm at or below 1e-8 is left unscaled); |cos| above DOT_THRESHOLD falls
 * back to linear interpolation (1 - t, t).
 */
export function slerpCoefficients(sums: SlerpSums, t: number): { s0: number; s1: number; lerp: boolean } {
  if (t === 0) return { s0: 1, s1: 0, lerp: false };
  if (t === 1) return { s0: 0, s1: 1, lerp: false };
  const na = Math.sqrt(sums.aa);
  const nb = Math.sqrt(sums.bb);
  const dot = sums.ab / (na > 1e-8 ? na : 1) / (nb > 1e-8 ? nb : 1);
  if (!(Math.abs(dot) <= DOT_THRESHOLD)) return { s0: 1 - t, s1: t, lerp: true };
  const theta0 = Math.acos(dot);
  const sinTheta0 = Math.sin(theta0);
  const thetaT = theta0 * t;
  return { s0: Math.sin(theta0 - thetaT) / sinTheta0, s1: Math.sin(thetaT) / sinTheta0, lerp: false };
}

/**
 * The seed of DARE's mask for one model's tensor: FNV-1a (32-bit) of `seed:model:tensor`, so a
 * mask depends on nothing but the recipe and the tensor's name.
 */
export function dareSeed(seed: number, model: number, tensor: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(`${seed}:${model}:${tensor}`)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A model's DARE mask over one tensor, element by element in order: keep with probability density. */
export class DareMask {
  private readonly next: () => number;
  private readonly bound: number;
  constructor(seed: number, density: number) {
    this.next = mulberry32(seed);
    // keep when the 32-bit draw u satisfies u / 2^32 < density
    this.bound = density * 4294967296;
  }
  /** Drops (sets to 0) or rescales (by 1/density) `n` deltas in place. */
  apply(delta: Float64Array, n: number, density: number): void {
    for (let i = 0; i < n; i++) delta[i] = this.next() < this.bound ? delta[i] / density : 0;
  }
}

/** The float32 key TIES ranks magnitudes by (mergekit ranks |delta| as float32); monotone in |delta|. */
export function magnitudeKey(d: number, f32: Float32Array, u32: Uint32Array): number {
  f32[0] = Math.abs(d);
  return u32[0];
}

/**
 * Which deltas TIES keeps: every one whose key is above `key`, and of those equal to it the
 * first `ties` in element order (mergekit takes the top k of a sort; ckpt's sort is stable).
 */
export interface TrimThreshold {
  key: number;
  ties: number;
  /** Keep everything (density 1). */
  all: boolean;
}

/** Trims one block of deltas in place; `seenTies` carries the count of equal keys kept so far. */
export function trimBlock(delta: Float64Array, n: number, th: TrimThreshold, state: { tiesKept: number }, f32: Float32Array, u32: Uint32Array): void {
  if (th.all) return;
  for (let i = 0; i < n; i++) {
    const k = magnitudeKey(delta[i], f32, u32);
    if (k > th.key) continue;
    if (k === th.key && state.tiesKept < th.ties) {
      state.tiesKept++;
      continue;
    }
    delta[i] = 0;
  }
}

/**
 * Combines task vectors into the merged values: optional sign consensus (TIES: the elected sign is
 * the sign of the sum of the weighted deltas, >= 0 counting as +; only deltas of that sign count,
 * and the divisor is the sum of their weights), optional normalization, lambda, then base + delta.
 */
export function taskArithmeticBlock(
  base: Float64Array,
  deltas: Float64Array[],
  weights: readonly number[],
  opts: { consensus: boolean; normalize: boolean; lambda: number },
  n: number,
  out: Float64Array,
): void {
  let plainDivisor = 0;
  for (const w of weights) plainDivisor += w;
  if (Math.abs(plainDivisor) < 1e-8) plainDivisor = 1;
  const m = deltas.length;
  for (let i = 0; i < n; i++) {
    let mixed = 0;
    let divisor = plainDivisor;
    if (opts.consensus) {
      let sum = 0;
      for (let k = 0; k < m; k++) sum += weights[k] * deltas[k][i];
      const elected = sum >= 0 ? 1 : -1;
      divisor = 0;
      for (let k = 0; k < m; k++) {
        const wd = weights[k] * deltas[k][i];
        if (Math.sign(wd) === elected) {
          mixed += wd;
          divisor += weights[k];
        }
      }
      if (divisor === 0) divisor = 1;
    } else for (let k = 0; k < m; k++) mixed += weights[k] * deltas[k][i];
    if (opts.normalize) mixed /= divisor;
    if (opts.lambda !== 1) mixed *= opts.lambda;
    // a zero delta leaves the base as it is (-0 included)
    out[i] = mixed === 0 ? base[i] : base[i] + mixed;
  }
}
