/**
 * Byte planes: byte k of every element goes to plane k, so the exponent bytes of floats (few
 * distinct values) sit together where zstd's entropy coder can use them, instead of being
 * interleaved with near-random mantissa bytes. A tail shorter than one element stays verbatim at
 * the end, so any length round-trips.
 *
 * These run on every stored and every read chunk, so they work on 32-bit words: a 4x4 byte
 * transpose of four elements into four plane words is a handful of shifts, about 4x fewer memory
 * operations than moving bytes one at a time. Words are read little-endian, which is what every
 * platform Node ships on uses; a big-endian host takes the byte loop.
 */

import { simdJoin, simdMemory } from './planesSimd.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** Below this many bytes the copies in and out of WebAssembly memory cost more than they save. */
const SIMD_MIN_BYTES = 4096;

/**
 * The SIMD module with `src` copied to the start of its memory, room for `spans` buffers of its
 * (16-byte rounded) size, and the element and group counts; undefined when SIMD does not apply.
 */
function simdWork(src: Uint8Array, planes: number, spans: number) {
  if ((planes !== 2 && planes !== 4) || src.length < SIMD_MIN_BYTES) return undefined;
  const s = simdJoin();
  if (!s) return undefined;
  const len = src.length;
  const n = Math.floor(len / planes);
  const span = (len + 15) & ~15;
  const mem = simdMemory(s, spans * span);
  mem.set(src, 0);
  return { s, len, n, groups: n >>> 4, span, mem };
}

/**
 * joinPlanes (and with a base, joinUndoZigzag) in WebAssembly SIMD for 2- and 4-byte elements:
 * whole groups of 16 elements there, the few elements after them and the tail bytes here.
 * Undefined when SIMD is not available or does not apply. With `inPlace` the result overwrites
 * `src` (a buffer the caller owns and no longer needs, such as a fresh zstd output): no new
 * buffer of a chunk's size is allocated, and fresh buffers of about a MiB each cost page faults
 * on every chunk.
 */
function joinSimd(src: Uint8Array, planes: number, base: Uint8Array | undefined, inPlace: boolean): Uint8Array | undefined {
  const w = simdWork(src, planes, 3);
  if (!w) return undefined;
  const { s, len, n, groups, span, mem } = w;
  if (base) {
    mem.set(base, span);
    (planes === 4 ? s.join4z : s.join2z)(0, span, 2 * span, n, groups);
  } else (planes === 4 ? s.join4 : s.join2)(0, 2 * span, n, groups);
  const done = groups * 16;
  const m = n - done;
  // the last elements: their plane bytes gathered into planes of their own (before an in-place
  // result overwrites them), joined the slow way
  let rest: Uint8Array | undefined;
  if (m > 0) {
    const gathered = new Uint8Array(m * planes);
    for (let k = 0; k < planes; k++) gathered.set(src.subarray(k * n + done, k * n + n), k * m);
    const joined = transpose(gathered, planes, false);
    rest = base ? elementDelta(joined, base.subarray(done * planes, n * planes), planes, false) : joined;
  }
  const out = inPlace ? src : uninitialized(len);
  out.set(mem.subarray(2 * span, 2 * span + done * planes));
  if (rest) out.set(rest, done * planes);
  for (let i = n * planes; i < len; i++) out[i] = base ? src[i] ^ base[i] : src[i];
  return out;
}

export function splitPlanes(src: Uint8Array, planes: number): Uint8Array {
  return splitSimd(src, planes) ?? transpose(src, planes, true);
}

/** splitPlanes in WebAssembly SIMD for 2- and 4-byte elements, as joinSimd the other way. */
function splitSimd(src: Uint8Array, planes: number): Uint8Array | undefined {
  const w = simdWork(src, planes, 2);
  if (!w) return undefined;
  const { s, len, n, groups, span, mem } = w;
  (planes === 4 ? s.split4 : s.split2)(0, span, n, groups);
  const out = uninitialized(len);
  out.set(mem.subarray(span, span + n * planes));
  // the elements after the last group of 16, and the tail bytes, the slow way
  for (let i = groups * 16; i < n; i++) for (let k = 0; k < planes; k++) out[k * n + i] = src[i * planes + k];
  out.set(src.subarray(n * planes), n * planes);
  return out;
}

/** `inPlace`: the result may overwrite `src`, which the caller gives up (see joinSimd). */
export function joinPlanes(src: Uint8Array, planes: number, inPlace = false): Uint8Array {
  return joinSimd(src, planes, undefined, inPlace) ?? transpose(src, planes, false);
}

function transpose(src: Uint8Array, planes: number, split: boolean): Uint8Array {
  if (!Number.isInteger(planes) || planes < 1) throw new RangeError(`bad plane count ${planes}`);
  const out = uninitialized(src.length);
  const n = Math.floor(src.length / planes);
  const body = n * planes;
  if (planes === 1 || n === 0) {
    out.set(src);
    return out;
  }
  // Word views need every plane to start on a 4-byte boundary (n % 4 == 0); 1 MiB chunks of
  // any float always qualify, so only odd tails of tensors take the byte loop.
  const wordPath = LITTLE_ENDIAN && n % 4 === 0 && (planes === 2 || planes % 4 === 0);
  if (wordPath) {
    // a copy is cheap next to the transpose; Uint8Array's slice, because a Buffer's slice is a view
    const input = src.byteOffset % 4 === 0 ? src : Uint8Array.prototype.slice.call(src, 0, body);
    const inW = new Uint32Array(input.buffer, input.byteOffset, body >>> 2);
    const outW = new Uint32Array(out.buffer, 0, body >>> 2);
    if (planes === 2) {
      if (split) split2(inW, outW, n >>> 2);
      else join2(inW, outW, n >>> 2);
    } else if (split) {
      split4(inW, outW, n >>> 2, planes >>> 2);
    } else {
      join4(inW, outW, n >>> 2, planes >>> 2);
    }
  } else if (split) {
    for (let k = 0; k < planes; k++) {
      const base = k * n;
      for (let i = 0, j = k; i < n; i++, j += planes) out[base + i] = src[j];
    }
  } else {
    for (let k = 0; k < planes; k++) {
      const base = k * n;
      for (let i = 0, j = k; i < n; i++, j += planes) out[j] = src[base + i];
    }
  }
  if (body < src.length) out.set(src.subarray(body), body);
  return out;
}

/**
 * Elements of `words` 32-bit words each (planes = 4 * words). For word slot w, four consecutive
 * elements give four words whose 4x4 byte transpose is one word of each of planes 4w..4w+3. The
 * transpose is its own inverse, so joining only swaps which side is strided. Split and join are
 * separate loops because a branch inside the loop cost ~15% here.
 */
function split4(inW: Uint32Array, outW: Uint32Array, groups: number, words: number): void {
  for (let w = 0; w < words; w++) {
    const o0 = 4 * w * groups;
    const o1 = o0 + groups;
    const o2 = o1 + groups;
    const o3 = o2 + groups;
    for (let g = 0, e = w; g < groups; g++, e += 4 * words) {
      const a = inW[e];
      const b = inW[e + words];
      const c = inW[e + 2 * words];
      const d = inW[e + 3 * words];
      outW[o0 + g] = (a & 0xff) | ((b & 0xff) << 8) | ((c & 0xff) << 16) | (d << 24);
      outW[o1 + g] = ((a >>> 8) & 0xff) | (b & 0xff00) | ((c & 0xff00) << 8) | ((d & 0xff00) << 16);
      outW[o2 + g] = ((a >>> 16) & 0xff) | ((b >>> 8) & 0xff00) | (c & 0xff0000) | ((d & 0xff0000) << 8);
      outW[o3 + g] = (a >>> 24) | ((b >>> 16) & 0xff00) | ((c >>> 8) & 0xff0000) | (d & 0xff000000);
    }
  }
}

function join4(inW: Uint32Array, outW: Uint32Array, groups: number, words: number): void {
  for (let w = 0; w < words; w++) {
    const o0 = 4 * w * groups;
    const o1 = o0 + groups;
    const o2 = o1 + groups;
    const o3 = o2 + groups;
    for (let g = 0, e = w; g < groups; g++, e += 4 * words) {
      const a = inW[o0 + g];
      const b = inW[o1 + g];
      const c = inW[o2 + g];
      const d = inW[o3 + g];
      outW[e] = (a & 0xff) | ((b & 0xff) << 8) | ((c & 0xff) << 16) | (d << 24);
      outW[e + words] = ((a >>> 8) & 0xff) | (b & 0xff00) | ((c & 0xff00) << 8) | ((d & 0xff00) << 16);
      outW[e + 2 * words] = ((a >>> 16) & 0xff) | ((b >>> 8) & 0xff00) | (c & 0xff0000) | ((d & 0xff0000) << 8);
      outW[e + 3 * words] = (a >>> 24) | ((b >>> 16) & 0xff00) | ((c >>> 8) & 0xff0000) | (d & 0xff000000);
    }
  }
}

/** Two 2-byte elements per word: words a, b hold elements 0-3; out gets one word per plane. */
function split2(inW: Uint32Array, outW: Uint32Array, groups: number): void {
  for (let g = 0; g < groups; g++) {
    const a = inW[2 * g];
    const b = inW[2 * g + 1];
    outW[g] = (a & 0xff) | ((a >>> 8) & 0xff00) | ((b & 0xff) << 16) | ((b << 8) & 0xff000000);
    outW[groups + g] = ((a >>> 8) & 0xff) | ((a >>> 16) & 0xff00) | ((b & 0xff00) << 8) | (b & 0xff000000);
  }
}

function join2(inW: Uint32Array, outW: Uint32Array, groups: number): void {
  for (let g = 0; g < groups; g++) {
    const p0 = inW[g];
    const p1 = inW[groups + g];
    outW[2 * g] = (p0 & 0xff) | ((p1 & 0xff) << 8) | ((p0 & 0xff00) << 8) | ((p1 & 0xff00) << 16);
    outW[2 * g + 1] = ((p0 >>> 16) & 0xff) | ((p1 >>> 8) & 0xff00) | ((p0 >>> 8) & 0xff0000) | (p1 & 0xff000000);
  }
}

/**
 * Every byte of the result is written below, so skipping the zero fill of a fresh buffer is safe;
 * the slow variant never hands out a slice of Node's shared pool, so the view starts at offset 0
 * and word views fit.
 */
function uninitialized(length: number): Uint8Array {
  const b = Buffer.allocUnsafeSlow(length);
  return new Uint8Array(b.buffer, b.byteOffset, length);
}

/**
 * dst[i] = a[i] ^ b[i] over the shortest of the three. dst may be a or b. Word-wide when all three
 * share an alignment (the usual case: fresh buffers), byte-wise otherwise and for the tail.
 */
export function xorInto(dst: Uint8Array, a: Uint8Array, b: Uint8Array): Uint8Array {
  const len = Math.min(dst.length, a.length, b.length);
  let i = 0;
  const off = dst.byteOffset & 3;
  if (len >= 64 && (a.byteOffset & 3) === off && (b.byteOffset & 3) === off) {
    const head = (4 - off) & 3;
    for (; i < head; i++) dst[i] = a[i] ^ b[i];
    const words = (len - head) >>> 2;
    const dw = new Uint32Array(dst.buffer, dst.byteOffset + head, words);
    const aw = new Uint32Array(a.buffer, a.byteOffset + head, words);
    const bw = new Uint32Array(b.buffer, b.byteOffset + head, words);
    for (let w = 0; w < words; w++) dw[w] = aw[w] ^ bw[w];
    i = head + words * 4;
  }
  for (; i < len; i++) dst[i] = a[i] ^ b[i];
  return dst;
}

/**
 * Arithmetic delta of little-endian elements `width` bytes wide (2, 4 or 8): each element's bit
 * pattern minus the base's, wrapping, then zigzag-coded so that small steps either way give
 * small unsigned numbers. A weight that moved a little differs from its base in the low mantissa
 * bits; XOR turns a borrow across a byte (0x3f800000 vs 0x3f7fffff) into a run of ones, while the
 * difference stays 1 and its high bytes zero, which the byte planes then compress (measured on
 * real AdamW checkpoints, stored / raw: 0.76 against 0.79 for XOR at 10 steps apart, 0.25
 * against 0.29 for a BF16 fine-tune against its base). A tail
 * shorter than an element is XORed. DataView reads are endian-explicit and need no alignment, so
 * the stored bytes are the same on every host and no input is copied.
 */
export function zigzagDelta(cur: Uint8Array, base: Uint8Array, width: number): Uint8Array {
  return elementDelta(cur, base, width, true);
}

/** Inverse of zigzagDelta: the chunk back from its delta and the same base. */
export function undoZigzagDelta(delta: Uint8Array, base: Uint8Array, width: number): Uint8Array {
  return elementDelta(delta, base, width, false);
}

/**
 * joinPlanes then undoZigzagDelta in one pass, for what a zigzag chunk decodes through: the
 * element is rebuilt from its plane bytes and its base added back without the joined delta ever
 * being written out. Same result as the two calls (test/store/bytePlanes.test.ts).
 */
export function joinUndoZigzag(src: Uint8Array, base: Uint8Array, width: number, inPlace = false): Uint8Array {
  if (width !== 2 && width !== 4 && width !== 8) throw new RangeError(`bad element width ${width}`);
  if (base.length !== src.length) throw new RangeError(`base of ${base.length} bytes for ${src.length}`);
  const fast = joinSimd(src, width, base, inPlace);
  if (fast) return fast;
  const n = Math.floor(src.length / width);
  const body = n * width;
  const aligned = (b: Uint8Array) => b.byteOffset % 4 === 0;
  if (!LITTLE_ENDIAN || n % 4 !== 0 || width === 8 || !aligned(src) || !aligned(base)) {
    return undoZigzagDelta(joinPlanes(src, width), base, width);
  }
  const out = uninitialized(src.length);
  const groups = n >>> 2;
  const inW = new Uint32Array(src.buffer, src.byteOffset, body >>> 2);
  const bW = new Uint32Array(base.buffer, base.byteOffset, body >>> 2);
  const outW = new Uint32Array(out.buffer, 0, body >>> 2);
  if (width === 4) {
    for (let g = 0, e = 0; g < groups; g++, e += 4) {
      const a = inW[g];
      const b = inW[groups + g];
      const c = inW[2 * groups + g];
      const d = inW[3 * groups + g];
      const z0 = (a & 0xff) | ((b & 0xff) << 8) | ((c & 0xff) << 16) | (d << 24);
      const z1 = ((a >>> 8) & 0xff) | (b & 0xff00) | ((c & 0xff00) << 8) | ((d & 0xff00) << 16);
      const z2 = ((a >>> 16) & 0xff) | ((b >>> 8) & 0xff00) | (c & 0xff0000) | ((d & 0xff0000) << 8);
      const z3 = (a >>> 24) | ((b >>> 16) & 0xff00) | ((c >>> 8) & 0xff0000) | (d & 0xff000000);
      // a Uint32Array store wraps the sum modulo 2^32, as the element arithmetic wants
      outW[e] = ((z0 >>> 1) ^ -(z0 & 1)) + bW[e];
      outW[e + 1] = ((z1 >>> 1) ^ -(z1 & 1)) + bW[e + 1];
      outW[e + 2] = ((z2 >>> 1) ^ -(z2 & 1)) + bW[e + 2];
      outW[e + 3] = ((z3 >>> 1) ^ -(z3 & 1)) + bW[e + 3];
    }
  } else {
    // two 2-byte elements per word: plane words p0, p1 hold the low and high bytes of 4 elements
    for (let g = 0, e = 0; g < groups; g++, e += 2) {
      const p0 = inW[g];
      const p1 = inW[groups + g];
      const z0 = (p0 & 0xff) | ((p1 & 0xff) << 8);
      const z1 = ((p0 >>> 8) & 0xff) | (p1 & 0xff00);
      const z2 = ((p0 >>> 16) & 0xff) | ((p1 >>> 8) & 0xff00);
      const z3 = (p0 >>> 24) | ((p1 >>> 16) & 0xff00);
      const b0 = bW[e];
      const b1 = bW[e + 1];
      const v0 = (((z0 >>> 1) ^ -(z0 & 1)) + b0) & 0xffff;
      const v1 = (((z1 >>> 1) ^ -(z1 & 1)) + (b0 >>> 16)) & 0xffff;
      const v2 = (((z2 >>> 1) ^ -(z2 & 1)) + b1) & 0xffff;
      const v3 = (((z3 >>> 1) ^ -(z3 & 1)) + (b1 >>> 16)) & 0xffff;
      outW[e] = v0 | (v1 << 16);
      outW[e + 1] = v2 | (v3 << 16);
    }
  }
  for (let i = body; i < src.length; i++) out[i] = src[i] ^ base[i];
  return out;
}

function elementDelta(src: Uint8Array, base: Uint8Array, width: number, forward: boolean): Uint8Array {
  if (width !== 2 && width !== 4 && width !== 8) throw new RangeError(`bad element width ${width}`);
  if (base.length !== src.length) throw new RangeError(`base of ${base.length} bytes for ${src.length}`);
  const out = uninitialized(src.length);
  const body = src.length - (src.length % width);
  const s = new DataView(src.buffer, src.byteOffset, src.length);
  const b = new DataView(base.buffer, base.byteOffset, base.length);
  const o = new DataView(out.buffer, out.byteOffset, out.length);
  if (width === 4) {
    if (forward) {
      for (let i = 0; i < body; i += 4) {
        const d = (s.getUint32(i, true) - b.getUint32(i, true)) | 0;
        o.setUint32(i, (d << 1) ^ (d >> 31), true);
      }
    } else {
      for (let i = 0; i < body; i += 4) {
        const z = s.getUint32(i, true);
        o.setUint32(i, ((z >>> 1) ^ -(z & 1)) + b.getUint32(i, true), true);
      }
    }
  } else if (width === 2) {
    if (forward) {
      for (let i = 0; i < body; i += 2) {
        const d = ((s.getUint16(i, true) - b.getUint16(i, true)) << 16) >> 16;
        o.setUint16(i, (d << 1) ^ (d >> 15), true);
      }
    } else {
      for (let i = 0; i < body; i += 2) {
        const z = s.getUint16(i, true);
        o.setUint16(i, ((z >>> 1) ^ -(z & 1)) + b.getUint16(i, true), true);
      }
    }
  } else if (forward) {
    for (let i = 0; i < body; i += 8) {
      const cl = s.getUint32(i, true);
      const bl = b.getUint32(i, true);
      const lo = cl - bl; // in (-2^32, 2^32): negative means a borrow
      const hi = (s.getUint32(i + 4, true) - b.getUint32(i + 4, true) - (lo < 0 ? 1 : 0)) | 0;
      const sign = hi >> 31;
      o.setUint32(i, ((lo << 1) ^ sign) >>> 0, true);
      o.setUint32(i + 4, ((hi << 1) | ((lo >>> 0) >>> 31)) ^ sign, true);
    }
  } else {
    for (let i = 0; i < body; i += 8) {
      const zl = s.getUint32(i, true);
      const zh = s.getUint32(i + 4, true);
      const sign = -(zl & 1);
      const lo = (((zl >>> 1) | (zh << 31)) ^ sign) >>> 0;
      const hi = (zh >>> 1) ^ sign;
      const sum = lo + b.getUint32(i, true); // below 2^33: the carry is bit 32
      o.setUint32(i, sum >>> 0, true);
      o.setUint32(i + 4, (hi + b.getUint32(i + 4, true) + (sum >= 2 ** 32 ? 1 : 0)) >>> 0, true);
    }
  }
  for (let i = body; i < src.length; i++) out[i] = src[i] ^ base[i];
  return out;
}
