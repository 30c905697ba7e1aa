/**
 * Float64 values back to a float dtype's bytes, each rounded once, to nearest, ties to even
 * (IEEE 754's default). F64 is exact, F32 is the typed-array store (which rounds that way), BF16
 * and F16 and the 8-bit floats are encoded from the float64 directly, so no value is rounded
 * twice. Overflow gives infinity where the dtype has one, else NaN (as a non-saturating cast
 * does); the FNUZ types have no negative zero, so -0 becomes 0.
 */
import { CkptError } from '../core/errors.js';

interface MiniFloat {
  expBits: number;
  mantBits: number;
  bias: number;
  /** ieee: infinities and NaNs at the top exponent; fn: no infinity, S.1111.111 is NaN; fnuz: no infinity, 0x80 is NaN. */
  kind: 'ieee' | 'fn' | 'fnuz';
}

const MINI: Record<string, MiniFloat> = {
  F16: { expBits: 5, mantBits: 10, bias: 15, kind: 'ieee' },
  F8_E5M2: { expBits: 5, mantBits: 2, bias: 15, kind: 'ieee' },
  F8_E4M3: { expBits: 4, mantBits: 3, bias: 7, kind: 'fn' },
  F8_E4M3FNUZ: { expBits: 4, mantBits: 3, bias: 8, kind: 'fnuz' },
  F8_E5M2FNUZ: { expBits: 5, mantBits: 2, bias: 16, kind: 'fnuz' },
};

/** Float dtypes merge can compute and write back. */
export function isMergeableFloat(dtype: string): boolean {
  return dtype === 'F64' || dtype === 'F32' || dtype === 'BF16' || MINI[dtype] !== undefined;
}

/** Bytes per element of a mergeable float dtype. */
export function floatBytes(dtype: string): number {
  if (dtype === 'F64') return 8;
  if (dtype === 'F32') return 4;
  if (dtype === 'BF16' || dtype === 'F16') return 2;
  if (MINI[dtype]) return 1;
  throw new CkptError('E_USAGE', `no float arithmetic for dtype ${dtype}`);
}

/** Rounds half to even: the nearest integer to `m`, and the even one of two equally near. */
function roundHalfEven(m: number): number {
  const f = Math.floor(m);
  const d = m - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** The bit pattern of `x` rounded to nearest-even in a small float format. */
export function encodeMiniFloat(x: number, f: MiniFloat): number {
  const { expBits, mantBits, bias, kind } = f;
  const total = 1 + expBits + mantBits;
  const signBit = 1 << (total - 1);
  const expMax = (1 << expBits) - 1;
  const nan = kind === 'fnuz' ? signBit : kind === 'fn' ? (expMax << mantBits) | ((1 << mantBits) - 1) : (expMax << mantBits) | (1 << (mantBits - 1));
  if (Number.isNaN(x)) return nan;
  const neg = x < 0 || Object.is(x, -0);
  const sign = neg ? signBit : 0;
  // FNUZ has no negative zero (its pattern is the NaN): a zero of either sign is 0x00
  const zero = kind === 'fnuz' ? 0 : sign;
  const a = Math.abs(x);
  const overflow = kind === 'ieee' ? sign | (expMax << mantBits) : nan;
  if (a === Infinity) return overflow;
  if (a === 0) return zero;
  // largest finite: top exponent below the reserved one (ieee), or the top exponent itself
  const topExp = kind === 'ieee' ? expMax - 1 : expMax;
  const topMant = kind === 'fn' ? (1 << mantBits) - 2 : (1 << mantBits) - 1;
  const emin = 1 - bias;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  if (e < emin) e = emin;
  let r = roundHalfEven(a / 2 ** (e - mantBits));
  if (r >= 2 ** (mantBits + 1)) {
    e++;
    r /= 2;
  }
  if (r === 0) return zero;
  if (r < 2 ** mantBits) return sign | r; // subnormal (e is emin)
  const field = e + bias;
  const mant = r - 2 ** mantBits;
  if (field > topExp || (field === topExp && mant > topMant)) return overflow;
  return sign | (field << mantBits) | mant;
}

/** BF16 from float64 with one rounding: the F32 rounding, corrected where it made a false tie. */
function encodeBF16(values: Float64Array, n: number, out: Uint16Array): void {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < n; i++) {
    const x = values[i];
    f[0] = x;
    const bits = u[0];
    if (Number.isNaN(x)) {
      out[i] = ((bits >>> 16) & 0x8000) | 0x7fc0;
      continue;
    }
    const low = bits & 0xffff;
    let hi = bits >>> 16;
    if (low === 0x8000 && f[0] !== x) {
      // F32 rounding landed exactly on a BF16 midpoint: the true value is on one side of it
      if (Math.abs(x) > Math.abs(f[0])) hi += 1;
    } else if (low > 0x8000 || (low === 0x8000 && (hi & 1) === 1)) hi += 1;
    out[i] = hi;
  }
}

/**
 * Writes `n` values as `dtype` into `out` (exactly n elements' bytes). Returns how many of them
 * are NaN.
 */
export function encodeFloats(values: Float64Array, n: number, dtype: string, out: Uint8Array): number {
  let nans = 0;
  for (let i = 0; i < n; i++) if (values[i] !== values[i]) nans++;
  const buf = out.buffer;
  const off = out.byteOffset;
  if (dtype === 'F64') {
    if (off % 8 === 0) new Float64Array(buf, off, n).set(values.subarray(0, n));
    else out.set(new Uint8Array(values.buffer, values.byteOffset, n * 8));
  } else if (dtype === 'F32') {
    if (off % 4 === 0) new Float32Array(buf, off, n).set(values.subarray(0, n));
    else out.set(new Uint8Array(Float32Array.from(values.subarray(0, n)).buffer));
  } else if (dtype === 'BF16') {
    const target = off % 2 === 0 ? new Uint16Array(buf, off, n) : new Uint16Array(n);
    encodeBF16(values, n, target);
    if (off % 2 !== 0) out.set(new Uint8Array(target.buffer));
  } else {
    const f = MINI[dtype];
    if (!f) throw new CkptError('E_USAGE', `no float arithmetic for dtype ${dtype}`);
    if (f.mantBits === 10) {
      for (let i = 0; i < n; i++) {
        const b = encodeMiniFloat(values[i], f);
        out[2 * i] = b & 0xff;
        out[2 * i + 1] = b >>> 8;
      }
    } else for (let i = 0; i < n; i++) out[i] = encodeMiniFloat(values[i], f);
  }
  return nans;
}
