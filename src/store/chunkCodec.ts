/**
 * Chunk codecs: how a chunk's bytes are stored. A chunk's id is the hash of its raw bytes, so the
 * codec is a storage detail the chunk record carries (codec id and plane count) and never
 * affects dedup.
 *
 *   0 none     the raw bytes
 *   1 zstd     zstd of the raw bytes
 *   2 planes   zstd of the byte planes (planes = bytes per float element)
 *   3 delta    zstd of the byte planes of (raw XOR base), base being a chunk of the same length
 *   4 zigzag   zstd of the byte planes of the zigzag-coded difference raw - base, element by
 *              element (planes = element width: 2, 4 or 8); what auto uses for floats
 *
 * Measured on a small transformer trained with AdamW (fp32 weights and optimizer state, 1 MiB
 * chunks, zstd level 1), stored / raw bytes: zstd 0.91, planes 0.83; against the checkpoint 10
 * steps earlier, delta 0.79 and zigzag 0.76; a fine-tune's weights against its base model,
 * delta 0.64 and zigzag 0.62 in fp32, 0.29 and 0.25 in bf16.
 */
import { createRequire } from 'node:module';
import { CkptError } from '../core/errors.js';
import { planesOf } from '../core/dtypes.js';
import { joinPlanes, joinUndoZigzag, splitPlanes, xorInto, zigzagDelta } from './bytePlanes.js';

export const CODEC_NONE = 0;
export const CODEC_ZSTD = 1;
export const CODEC_PLANES = 2;
export const CODEC_DELTA = 3;
export const CODEC_ZIGZAG = 4;
export type CodecId = typeof CODEC_NONE | typeof CODEC_ZSTD | typeof CODEC_PLANES | typeof CODEC_DELTA | typeof CODEC_ZIGZAG;

export interface EncodedChunk {
  codec: CodecId;
  planes: number;
  data: Uint8Array;
}

export interface EncodeOptions {
  dtype?: string;
  level?: number;
  /** A chunk of the parent version at the same place; used only when of the same length. */
  base?: Uint8Array;
  mode: 'auto' | 'none';
}

/**
 * Level 1, not zstd's default 3: on byte planes of float weights level 1 is both faster (about
 * 1.4x) and slightly smaller (a real fp32 checkpoint 0.831 vs 0.834, its BF16 weights 0.698 vs
 * 0.710, gaussian F32 0.842 vs 0.854): the gain is all in the entropy coder, and level 3's
 * longer match search mostly finds short matches that cost more than the literals they replace.
 */
export const DEFAULT_ZSTD_LEVEL = 1;

/** A compressed chunk is kept only if it saves at least this fraction of the raw bytes. */
export const MIN_SAVING = 0.03;

// The package's index.js drops the level argument (always level 3); its native binding takes it.
interface ZstdBinding {
  compress(data: Buffer, level?: number): Promise<Buffer>;
  decompress(data: Buffer): Promise<Buffer>;
}
// loaded on first use: commands that read no chunk (log, status, show) never pay for the addon
let binding: ZstdBinding | undefined;
const zstd = {
  compress: (data: Buffer, level?: number) => (binding ??= loadZstd()).compress(data, level),
  decompress: (data: Buffer) => (binding ??= loadZstd()).decompress(data),
};
function loadZstd(): ZstdBinding {
  const require = createRequire(import.meta.url);
  // The package's loader asks process.report whether the C library is glibc: a full diagnostic
  // report, ~10 ms of every commit. On Linux the glibc build is tried first; where it does not
  // load (musl, a package manager that placed it elsewhere), the package's loader decides.
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    try {
      return require(`@mongodb-js/zstd-linux-${process.arch}-gnu`) as ZstdBinding;
    } catch {
      // fall through
    }
  }
  return require('@mongodb-js/zstd/bindings') as ZstdBinding;
}

const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A stored chunk that cannot be decoded to what its record claims. */
export class ChunkDecodeError extends CkptError {
  constructor(detail: string, data: Record<string, unknown> = {}) {
    super('E_CORRUPT', `corrupt chunk: ${detail}`, { detail, ...data });
    this.name = 'ChunkDecodeError';
  }
}

export async function encodeChunk(raw: Uint8Array, opts: EncodeOptions): Promise<EncodedChunk> {
  const plain: EncodedChunk = { codec: CODEC_NONE, planes: 1, data: raw };
  if (opts.mode === 'none' || raw.length < MIN_COMPRESS_LENGTH) return plain;
  const level = opts.level ?? DEFAULT_ZSTD_LEVEL;
  const planes = opts.dtype === undefined ? 1 : planesOf(opts.dtype);
  const base = opts.base !== undefined && opts.base.length === raw.length ? opts.base : undefined;

  const est = estimateSaving(raw, planes, base);
  // Both candidates are compressed only when the estimates are close: otherwise the estimate's
  // winner wins for real too, and every chunk with a base would cost two compressions.
  const tries: Promise<EncodedChunk>[] = [];
  if (est.plain >= MIN_SAVING && !(base !== undefined && est.delta > est.plain + ESTIMATE_MARGIN)) {
    tries.push(encodeAs(raw, planes > 1 ? CODEC_PLANES : CODEC_ZSTD, { planes, level }));
  }
  if (base !== undefined && est.delta >= MIN_SAVING && !(est.plain > est.delta + ESTIMATE_MARGIN)) {
    tries.push(encodeAs(raw, deltaCodec(planes), { planes, level, base }));
  }
  let best = plain;
  for (const enc of await Promise.all(tries)) if (enc.data.length < best.data.length) best = enc;
  return best.data.length <= raw.length * (1 - MIN_SAVING) ? best : plain;
}

const ESTIMATE_MARGIN = 0.05;

/** Chunks this small cannot save MIN_SAVING once zstd's frame header is paid. */
const MIN_COMPRESS_LENGTH = 64;

/** Encodes with the codec given, whatever the saving: for tests, benchmarks and forced choices. */
export async function encodeAs(
  raw: Uint8Array,
  codec: CodecId,
  opts: { planes?: number; level?: number; base?: Uint8Array } = {},
): Promise<EncodedChunk> {
  const level = opts.level ?? DEFAULT_ZSTD_LEVEL;
  const planes = opts.planes ?? 1;
  switch (codec) {
    case CODEC_NONE:
      return { codec, planes: 1, data: raw };
    case CODEC_ZSTD:
      return { codec, planes: 1, data: await zstd.compress(asBuffer(raw), level) };
    case CODEC_PLANES:
      return { codec, planes, data: await zstd.compress(asBuffer(splitPlanes(raw, planes)), level) };
    case CODEC_DELTA:
    case CODEC_ZIGZAG: {
      const base = opts.base;
      if (base === undefined || base.length !== raw.length) {
        throw new CkptError('E_USAGE', 'a delta codec needs a base chunk of the same length');
      }
      if (codec === CODEC_ZIGZAG && !ELEMENT_WIDTHS.has(planes)) {
        throw new CkptError('E_USAGE', `the zigzag codec needs elements of 2, 4 or 8 bytes, not ${planes}`);
      }
      const x = splitPlanes(deltaOf(codec, raw, base, planes), planes);
      return { codec, planes, data: await zstd.compress(asBuffer(x), level) };
    }
    default:
      throw new CkptError('E_USAGE', `unknown codec ${String(codec)}`);
  }
}

export async function decodeChunk(
  enc: { codec: number; planes: number; data: Uint8Array },
  rawLength: number,
  base?: Uint8Array,
): Promise<Uint8Array> {
  const { codec, planes, data } = enc;
  if (!Number.isSafeInteger(rawLength) || rawLength < 0) {
    throw new ChunkDecodeError(`impossible raw length ${rawLength}`, { codec, rawLength });
  }
  if (codec === CODEC_NONE) {
    if (data.length !== rawLength) {
      throw new ChunkDecodeError(`stored ${data.length} bytes, record says ${rawLength}`, { codec, rawLength });
    }
    return data;
  }
  if (codec !== CODEC_ZSTD && codec !== CODEC_PLANES && codec !== CODEC_DELTA && codec !== CODEC_ZIGZAG) {
    throw new ChunkDecodeError(`unknown codec ${codec}`, { codec });
  }
  const planesOk =
    codec === CODEC_ZSTD ? planes === 1 : codec === CODEC_ZIGZAG ? ELEMENT_WIDTHS.has(planes) : Number.isInteger(planes) && planes >= 1 && planes <= MAX_PLANES;
  if (!planesOk) throw new ChunkDecodeError(`bad plane count ${planes} for codec ${codec}`, { codec, planes });
  const isDelta = codec === CODEC_DELTA || codec === CODEC_ZIGZAG;
  if (isDelta && (base === undefined || base.length !== rawLength)) {
    const why = base === undefined ? 'is missing' : `has ${base.length} bytes, not ${rawLength}`;
    throw new ChunkDecodeError(`the base of a delta chunk ${why}`, { codec, rawLength });
  }
  checkFrame(data, rawLength, codec);
  let out: Uint8Array;
  try {
    out = await zstd.decompress(asBuffer(data));
  } catch (e) {
    throw new ChunkDecodeError(`zstd: ${(e as Error).message}`, { codec });
  }
  if (out.length !== rawLength) {
    throw new ChunkDecodeError(`decompressed to ${out.length} bytes, record says ${rawLength}`, { codec, rawLength });
  }
  if (codec === CODEC_ZSTD) return out;
  // the zstd output is this function's own: the planes are joined over it
  if (codec === CODEC_ZIGZAG) return joinUndoZigzag(out, base as Uint8Array, planes, true);
  out = joinPlanes(out, planes, true);
  return codec === CODEC_DELTA ? xorInto(out, out, base as Uint8Array) : out;
}

const ELEMENT_WIDTHS = new Set([2, 4, 8]);

/** Floats differ best arithmetically; bytes of unknown structure only by XOR. */
const deltaCodec = (planes: number): CodecId => (ELEMENT_WIDTHS.has(planes) ? CODEC_ZIGZAG : CODEC_DELTA);

function deltaOf(codec: CodecId, raw: Uint8Array, base: Uint8Array, planes: number): Uint8Array {
  return codec === CODEC_ZIGZAG ? zigzagDelta(raw, base, planes) : xorInto(new Uint8Array(raw.length), raw, base);
}

/** No dtype has more than 8 bytes per element; a larger count is a garbled record. */
const MAX_PLANES = 16;

/**
 * Walks the zstd frame's block headers before decompressing (RFC 8878). The binding decompresses
 * without an output limit, so a garbled or hostile frame of RLE blocks could expand a 1 MiB chunk
 * to tens of GB; here the frame must be a single frame covering the data exactly, and the bytes
 * it can produce must bracket rawLength. The upper cap allows blocks 128x smaller than zstd's
 * 128 KiB maximum (libzstd at levels 1-19 splits far less), so no frame we wrote is refused.
 */
function checkFrame(d: Uint8Array, rawLength: number, codec: number): void {
  const bad = (why: string): never => {
    throw new ChunkDecodeError(`bad zstd frame: ${why}`, { codec, rawLength });
  };
  if (d.length < 6 || d[0] !== 0x28 || d[1] !== 0xb5 || d[2] !== 0x2f || d[3] !== 0xfd) bad('no zstd magic');
  const fhd = d[4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if (fhd & 0x08) bad('reserved bit set');
  const checksum = (fhd >> 2) & 1;
  const didBytes = [0, 1, 2, 4][fhd & 3];
  let p = 5;
  let window = 0;
  if (!single) {
    const wd = d[p++];
    const log = 10 + (wd >> 3);
    window = 2 ** log + (2 ** log / 8) * (wd & 7);
  }
  p += didBytes;
  const fcsBytes = [single ? 1 : 0, 2, 4, 8][fcsFlag];
  if (p + fcsBytes > d.length) bad('truncated header');
  if (fcsBytes > 0) {
    let fcs = 0;
    for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + d[p + i];
    if (fcsBytes === 2) fcs += 256;
    if (fcs !== rawLength) bad(`content size ${fcs}, record says ${rawLength}`);
    if (single) window = fcs;
  }
  p += fcsBytes;
  const blockMax = Math.min(window, 128 * 1024);
  let exact = 0;
  let upper = 0;
  for (;;) {
    if (p + 3 > d.length) bad('truncated block header');
    const h = d[p] | (d[p + 1] << 8) | (d[p + 2] << 16);
    p += 3;
    const type = (h >> 1) & 3;
    const size = h >>> 3;
    if (type === 3) bad('reserved block type');
    if (size > blockMax) bad('block larger than the window allows');
    if (type === 0) {
      exact += size;
      p += size;
    } else if (type === 1) {
      exact += size;
      p += 1;
    } else {
      upper += blockMax;
      p += size;
    }
    if (p > d.length) bad('truncated block');
    if (h & 1) break;
  }
  p += checksum * 4;
  if (p !== d.length) bad(p > d.length ? 'truncated checksum' : 'bytes after the frame');
  upper += exact;
  if (exact > rawLength || upper < rawLength) bad(`frame cannot produce ${rawLength} bytes`);
  if (upper > 128 * rawLength + (1 << 20)) bad('frame could expand far beyond its chunk');
}

/**
 * Cheap guess of the fraction zstd would save, from the order-0 entropy of a 4 KiB sample per
 * byte plane: the entropy coder is where nearly all the gain on weights comes from, and the
 * histogram costs ~10% of hashing the chunk, where a trial compression of a sample costs a
 * thread-pool round trip of ~60 us. Repetition with a flat byte histogram (rare in tensors) is
 * missed and stored plain.
 */
function estimateSaving(raw: Uint8Array, planes: number, base: Uint8Array | undefined): { plain: number; delta: number } {
  const hist = new Uint32Array(256 * planes);
  const dhist = new Uint32Array(base ? 256 * planes : 0);
  let sampled = 0;
  const sample = (start: number, end: number) => {
    count(hist, raw.subarray(start, end), planes);
    if (base) count(dhist, deltaOf(deltaCodec(planes), raw.subarray(start, end), base.subarray(start, end), planes), planes);
    sampled += end - start;
  };
  if (raw.length <= SAMPLE_SLICES * SAMPLE_SLICE) {
    sample(0, raw.length);
  } else {
    // Slices start on element boundaries so byte k of an element always lands in plane k.
    const span = raw.length - SAMPLE_SLICE;
    for (let s = 0; s < SAMPLE_SLICES; s++) {
      const at = Math.floor((span * s) / (SAMPLE_SLICES - 1) / planes) * planes;
      sample(at, at + SAMPLE_SLICE);
    }
  }
  const saving = (h: Uint32Array) => 1 - entropyBits(h) / (8 * sampled);
  return { plain: saving(hist), delta: base ? saving(dhist) : 0 };
}

/** One 256-bin histogram per byte plane; strided loops beat a computed bin index by ~3x. */
function count(hist: Uint32Array, bytes: Uint8Array, planes: number): void {
  for (let k = 0; k < planes; k++) {
    const o = k << 8;
    for (let j = k; j < bytes.length; j += planes) hist[o | bytes[j]]++;
  }
}

const SAMPLE_SLICES = 4;
const SAMPLE_SLICE = 1024;

/** c * log2(c) for every count a sample can reach, so the estimate costs no logarithms. */
const C_LOG_C = Float64Array.from({ length: SAMPLE_SLICES * SAMPLE_SLICE + 1 }, (_, c) => (c > 0 ? c * Math.log2(c) : 0));

/**
 * Bits an ideal order-0 coder spends on each 256-bin histogram: n log n - sum c log c, plus the
 * Miller-Madow correction (used bins - 1) / 2 nats, without which a 1 KiB sample of random bytes
 * would look 2% compressible.
 */
function entropyBits(hist: Uint32Array): number {
  let bits = 0;
  for (let o = 0; o < hist.length; o += 256) {
    let n = 0;
    let sum = 0;
    let used = 0;
    for (let i = o; i < o + 256; i++) {
      const c = hist[i];
      n += c;
      sum += C_LOG_C[c];
      used += c > 0 ? 1 : 0;
    }
    if (n > 0) bits += Math.min(8 * n, C_LOG_C[n] - sum + (used - 1) / (2 * Math.LN2));
  }
  return bits;
}
