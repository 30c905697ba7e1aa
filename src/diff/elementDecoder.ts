/**
 * Decodes little-endian tensor element bytes into float64 values, for diff statistics.
 *
 * Every element type whose values fit a float64 without loss (all floats up to F64, integers up to
 * 32 bits) decodes exactly. I64/U64 values beyond 2^53 are rounded to the nearest float64, the
 * same as PyTorch's `.double()`. Sub-byte floats (F4, F6_*), complex and GGML block types have no
 * element decoding here: diff compares their bytes only.
 */
import { CkptError } from '../core/errors.js';

// Typed-array views read in platform order; ckpt's formats are little-endian on disk, and every
// platform Node 20 ships for is little-endian, so a view is a correct and fast decoder.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new CkptError('E_USAGE', 'ckpt needs a little-endian platform');
}

const ELEMENT_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  F8_E4M3FNUZ: 1,
  F8_E5M2FNUZ: 1,
  F8_E8M0: 1,
  I8: 1,
  I16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  BOOL: 1,
};

/** Bytes per element of a dtype `decodeElements` handles, or undefined when it has no element decoding. */
export function decodedElementBytes(dtype: string): number | undefined {
  return ELEMENT_BYTES[dtype];
}

export function isDecodableDType(dtype: string): boolean {
  return ELEMENT_BYTES[dtype] !== undefined;
}

/**
 * `bytes` itself when its offset suits a typed-array view of `align`-byte elements, otherwise a
 * copy that does (chunks sliced out of a pack can start anywhere). The copy is made by hand:
 * a Node Buffer's `slice()` is a view of the same memory, as misaligned as before.
 */
export function alignedBytes(bytes: Uint8Array, align: number): Uint8Array {
  if (bytes.byteOffset % align === 0) return bytes;
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy;
}

let f16Table: Float64Array | undefined;
let bf16Table: Float64Array | undefined;
const f8Tables = new Map<string, Float64Array>();

function buildF16(): Float64Array {
  const t = new Float64Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exp = (bits >> 10) & 0x1f;
    const mant = bits & 0x3ff;
    if (exp === 0x1f) t[bits] = mant ? NaN : sign * Infinity;
    else if (exp === 0) t[bits] = sign * mant * 2 ** -24;
    else t[bits] = sign * (1024 + mant) * 2 ** (exp - 25);
  }
  return t;
}

function buildBF16(): Float64Array {
  // BF16 is the upper half of an F32, so the F32 decoder is its exact definition.
  const u = new Uint32Array(65536);
  for (let bits = 0; bits < 65536; bits++) u[bits] = bits << 16;
  return Float64Array.from(new Float32Array(u.buffer));
}

/**
 * OCP FP8 and its "FNUZ" variants: `ieee` has infinities and NaNs at the top exponent (E5M2);
 * `fn` has no infinities and only S.1111.111 as NaN (E4M3); `fnuz` has no infinities, no negative
 * zero, and 0x80 as its only NaN, with a bias one larger.
 */
function buildF8(expBits: number, mantBits: number, bias: number, kind: 'ieee' | 'fn' | 'fnuz'): Float64Array {
  const t = new Float64Array(256);
  const expMax = (1 << expBits) - 1;
  const mantMax = (1 << mantBits) - 1;
  for (let bits = 0; bits < 256; bits++) {
    const sign = bits & 0x80 ? -1 : 1;
    const exp = (bits >> mantBits) & expMax;
    const mant = bits & mantMax;
    if (kind === 'fnuz' && bits === 0x80) t[bits] = NaN;
    else if (kind === 'ieee' && exp === expMax) t[bits] = mant ? NaN : sign * Infinity;
    else if (kind === 'fn' && exp === expMax && mant === mantMax) t[bits] = NaN;
    else if (exp === 0) t[bits] = sign * mant * 2 ** (1 - bias - mantBits);
    else t[bits] = sign * ((1 << mantBits) + mant) * 2 ** (exp - bias - mantBits);
  }
  return t;
}

function buildE8M0(): Float64Array {
  const t = new Float64Array(256);
  for (let bits = 0; bits < 256; bits++) t[bits] = bits === 0xff ? NaN : 2 ** (bits - 127);
  return t;
}

function f8Table(dtype: string): Float64Array {
  let t = f8Tables.get(dtype);
  if (!t) {
    if (dtype === 'F8_E4M3') t = buildF8(4, 3, 7, 'fn');
    else if (dtype === 'F8_E5M2') t = buildF8(5, 2, 15, 'ieee');
    else if (dtype === 'F8_E4M3FNUZ') t = buildF8(4, 3, 8, 'fnuz');
    else if (dtype === 'F8_E5M2FNUZ') t = buildF8(5, 2, 16, 'fnuz');
    else t = buildE8M0();
    f8Tables.set(dtype, t);
  }
  return t;
}

/** The float64 value of every bit pattern of an 8- or 16-bit float dtype, indexed by the pattern. */
export function decodeTable(dtype: string): Float64Array {
  if (dtype === 'F16') return (f16Table ??= buildF16());
  if (dtype === 'BF16') return (bf16Table ??= buildBF16());
  if (dtype.startsWith('F8_')) return f8Table(dtype);
  throw new CkptError('E_USAGE', `dtype ${dtype} has no decoding table`);
}

// Apart from the big switch, so the JIT compiles this loop on its own, for the two index types.
function lookup(table: Float64Array, codes: Uint8Array | Uint16Array, out: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = table[codes[i]];
}

/**
 * The elements of `bytes` as float64. Writes into `out` when given (it must hold at least as many
 * elements), so a streaming caller reuses one buffer.
 */
export function decodeElements(bytes: Uint8Array, dtype: string, out?: Float64Array): Float64Array {
  const size = ELEMENT_BYTES[dtype];
  if (size === undefined) throw new CkptError('E_USAGE', `cannot decode elements of dtype ${dtype}`);
  if (bytes.byteLength % size !== 0) {
    throw new CkptError('E_USAGE', `${bytes.byteLength} bytes is not a whole number of ${dtype} elements`, {
      dtype,
      length: bytes.byteLength,
    });
  }
  const n = bytes.byteLength / size;
  if (out && out.length < n) throw new CkptError('E_USAGE', `output holds ${out.length} of ${n} elements`);
  const res = out ?? new Float64Array(n);
  const src = alignedBytes(bytes, Math.min(size, dtype === 'F64' ? 8 : 4));
  const { buffer, byteOffset } = src;
  switch (dtype) {
    case 'F64':
      res.set(new Float64Array(buffer, byteOffset, n));
      break;
    case 'F32':
      res.set(new Float32Array(buffer, byteOffset, n));
      break;
    case 'I32':
      res.set(new Int32Array(buffer, byteOffset, n));
      break;
    case 'U32':
      res.set(new Uint32Array(buffer, byteOffset, n));
      break;
    case 'I16':
      res.set(new Int16Array(buffer, byteOffset, n));
      break;
    case 'U16':
      res.set(new Uint16Array(buffer, byteOffset, n));
      break;
    case 'I8':
      res.set(new Int8Array(buffer, byteOffset, n));
      break;
    case 'U8':
      res.set(src.subarray(0, n));
      break;
    case 'BOOL':
      for (let i = 0; i < n; i++) res[i] = src[i] ? 1 : 0;
      break;
    case 'F16':
    case 'BF16':
      lookup(decodeTable(dtype), new Uint16Array(buffer, byteOffset, n), res, n);
      break;
    case 'I64':
    case 'U64': {
      // hi * 2^32 is exact and lo is exact, so the one rounding of their sum is the correct
      // rounding of the 64-bit value, without a BigInt per element.
      const lo = new Uint32Array(buffer, byteOffset, 2 * n);
      const hi = dtype === 'I64' ? new Int32Array(buffer, byteOffset, 2 * n) : lo;
      for (let i = 0; i < n; i++) res[i] = hi[2 * i + 1] * 4294967296 + lo[2 * i];
      break;
    }
    default:
      lookup(f8Table(dtype), src, res, n);
  }
  return res;
}
