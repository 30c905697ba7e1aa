/**
 * GGUF (llama.cpp / ggml), versions 2 and 3, little-endian. The header, metadata and tensor infos
 * are kept verbatim as one `bytes` segment; each tensor's data (quantized blocks included) becomes
 * a `tensor` segment. The checks follow ggml's own reader (gguf.cpp), so a file ckpt accepts is
 * one llama.cpp would load, and every count and length is bounded by the file before it is used.
 */
import type { ByteSource } from '../core/byteSource.js';
import { dtypeByName, tensorByteLength } from '../core/dtypes.js';
import { FormatError } from '../core/errors.js';
import type { Segment } from '../core/layout.js';
import { normalizeSegments } from '../core/layout.js';
import type { CheckpointFormat } from './checkpointFormat.js';

const FORMAT = 'gguf';
const MAGIC = [0x47, 0x47, 0x55, 0x46]; // "GGUF"
const DEFAULT_ALIGNMENT = 32;
const MAX_KEY_BYTES = 65535;
// GGML_MAX_NAME counts the terminating NUL, so ggml refuses names of 64 bytes or more.
const MAX_NAME_BYTES = 63;
const MAX_DIMS = 4;
// The spec allows arrays of arrays; nothing real nests deeper than 2, and recursion must stop.
const MAX_ARRAY_DEPTH = 8;
// Arrays longer than this (a tokenizer's vocabulary) are summarised in info, not copied into it.
const MAX_INFO_ARRAY = 64;
const WINDOW = 1 << 20;
const INT64_MAX = (1n << 63n) - 1n;

/** ggml_type ids (ggml.h); the gaps are types ggml removed. */
const GGML_TYPES: Record<number, string> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  30: 'BF16',
  34: 'TQ1_0',
  35: 'TQ2_0',
  39: 'MXFP4',
};

const T = {
  U8: 0,
  I8: 1,
  U16: 2,
  I16: 3,
  U32: 4,
  I32: 5,
  F32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  U64: 10,
  I64: 11,
  F64: 12,
} as const;

const TYPE_NAMES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];
const FIXED_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

/** Smallest encoding of one value of a type: bounds a declared count by the bytes left. */
function minSize(type: number): number {
  if (type === T.STRING) return 8;
  if (type === T.ARRAY) return 12;
  return FIXED_SIZE[type];
}

const utf8 = new TextDecoder('utf-8');

/**
 * Sequential little-endian reads over a ByteSource through a sliding window, so a header of many
 * megabytes (a 150k-token vocabulary) costs a few large reads, not one per value.
 */
class Reader {
  pos = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private view = new DataView(this.buf.buffer);
  private bufStart = 0;

  constructor(private readonly src: ByteSource) {}

  get size(): number {
    return this.src.size;
  }

  fail(fault: string, at = this.pos): never {
    throw new FormatError(FORMAT, Math.max(0, Math.min(at, this.src.size - 1)), fault);
  }

  /** Makes `n` bytes at `pos` available and returns their index in the window. */
  private async need(n: number, what: string): Promise<number> {
    if (n > this.src.size - this.pos) {
      this.fail(`${what} needs ${n} bytes, but the file ends at ${this.src.size}`);
    }
    const rel = this.pos - this.bufStart;
    if (rel < 0 || rel + n > this.buf.byteLength) {
      const len = Math.min(this.src.size - this.pos, Math.max(n, WINDOW));
      this.buf = await this.src.read(this.pos, len);
      this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
      this.bufStart = this.pos;
      return 0;
    }
    return rel;
  }

  async u8(what: string): Promise<number> {
    const i = await this.need(1, what);
    this.pos += 1;
    return this.buf[i];
  }

  async u32(what: string): Promise<number> {
    const i = await this.need(4, what);
    this.pos += 4;
    return this.view.getUint32(i, true);
  }

  async u64(what: string): Promise<bigint> {
    const i = await this.need(8, what);
    this.pos += 8;
    return this.view.getBigUint64(i, true);
  }

  /** One scalar of a fixed-size GGUF type, as a JSON-friendly value. */
  async scalar(type: number, what: string): Promise<number | boolean | string> {
    const i = await this.need(FIXED_SIZE[type], what);
    const v = this.view;
    this.pos += FIXED_SIZE[type];
    switch (type) {
      case T.U8:
        return v.getUint8(i);
      case T.I8:
        return v.getInt8(i);
      case T.U16:
        return v.getUint16(i, true);
      case T.I16:
        return v.getInt16(i, true);
      case T.U32:
        return v.getUint32(i, true);
      case T.I32:
        return v.getInt32(i, true);
      case T.F32:
        return v.getFloat32(i, true);
      case T.BOOL:
        return v.getUint8(i) !== 0;
      case T.U64:
        return safeNumber(v.getBigUint64(i, true));
      case T.I64:
        return safeNumber(v.getBigInt64(i, true));
      default:
        return v.getFloat64(i, true);
    }
  }

  async bytes(n: number, what: string): Promise<Uint8Array> {
    const i = await this.need(n, what);
    this.pos += n;
    return this.buf.subarray(i, i + n);
  }

  skip(n: number, what: string): void {
    if (n > this.src.size - this.pos) this.fail(`${what} needs ${n} bytes, but the file ends at ${this.src.size}`);
    this.pos += n;
  }

  /** A u64 length or count that must fit in the rest of the file at `unit` bytes each. */
  async count(what: string, unit: number): Promise<number> {
    const at = this.pos;
    const n = await this.u64(what);
    const left = BigInt(this.src.size - this.pos);
    if (n * BigInt(unit) > left) {
      this.fail(`${what} ${n} runs past the end of the file (${left} bytes left)`, at);
    }
    return Number(n);
  }

  async string(what: string, maxBytes?: number): Promise<string> {
    const at = this.pos;
    const n = await this.count(`${what} length`, 1);
    if (maxBytes !== undefined && n > maxBytes) this.fail(`${what} of ${n} bytes exceeds ${maxBytes}`, at);
    return utf8.decode(await this.bytes(n, what));
  }

  async skipString(what: string): Promise<void> {
    this.skip(await this.count(`${what} length`, 1), what);
  }
}

/** u64/i64 metadata as numbers when exact, else as decimal strings (JSON has no 64-bit ints). */
function safeNumber(v: bigint): number | string {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

type Value = number | boolean | string | Value[] | { type: string; length: number };

function checkType(r: Reader, type: number, at: number): void {
  if (!Number.isInteger(type) || type < 0 || type > T.F64) r.fail(`unknown metadata value type ${type}`, at);
}

/** Reads a value; arrays longer than MAX_INFO_ARRAY are walked (to validate and skip) but summarised. */
async function readValue(r: Reader, type: number, key: string, depth: number): Promise<Value> {
  if (type === T.STRING) return r.string(`string value of ${key}`);
  if (type !== T.ARRAY) return r.scalar(type, `value of ${key}`);
  if (depth >= MAX_ARRAY_DEPTH) r.fail(`arrays in ${key} nest deeper than ${MAX_ARRAY_DEPTH}`);
  const typeAt = r.pos;
  const elemType = await r.u32(`array type of ${key}`);
  checkType(r, elemType, typeAt);
  const n = await r.count(`array length of ${key}`, minSize(elemType));
  if (n > MAX_INFO_ARRAY) {
    if (elemType === T.STRING) {
      for (let i = 0; i < n; i++) await r.skipString(`element ${i} of ${key}`);
    } else if (elemType === T.ARRAY) {
      for (let i = 0; i < n; i++) await readValue(r, T.ARRAY, key, depth + 1);
    } else {
      r.skip(n * FIXED_SIZE[elemType], `elements of ${key}`);
    }
    return { type: TYPE_NAMES[elemType], length: n };
  }
  const out: Value[] = [];
  for (let i = 0; i < n; i++) out.push(await readValue(r, elemType, key, depth + 1));
  return out;
}

interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  offset: number;
  length: number;
}

const padTo = (x: number, align: number) => Math.ceil(x / align) * align;

export const gguf: CheckpointFormat = {
  name: FORMAT,

  detect(head) {
    return head.length >= 8 && MAGIC.every((b, i) => head[i] === b);
  },

  async parse(src) {
    const r: Reader = new Reader(src);
    const magic = await r.bytes(4, 'magic');
    if (!MAGIC.every((b, i) => magic[i] === b)) r.fail('bad magic, expected "GGUF"', 0);

    const version = await r.u32('version');
    if (version === 0 || version === 1 || version > 3) {
      const hint = version !== 0 && (version & 0xffff) === 0 ? ' (a big-endian file?)' : '';
      r.fail(`unsupported version ${version}${hint}; ckpt reads GGUF v2 and v3`, 4);
    }

    // A tensor info takes at least 24 bytes and a key/value pair 13, so counts beyond what the
    // file could hold are lies and are refused before anything is allocated.
    const tensorCountAt = r.pos;
    const tensorCount = await r.u64('tensor count');
    const kvCountAt = r.pos;
    const kvCount = await r.u64('metadata count');
    const left = BigInt(src.size - r.pos);
    if (tensorCount * 24n > left) r.fail(`tensor count ${tensorCount} runs past the end of the file`, tensorCountAt);
    if (kvCount * 13n + tensorCount * 24n > left) {
      r.fail(`metadata count ${kvCount} runs past the end of the file`, kvCountAt);
    }

    // A Map, so a key such as "__proto__" is data and not an object's prototype.
    const metadata = new Map<string, Value>();
    let alignment = DEFAULT_ALIGNMENT;
    for (let i = 0n; i < kvCount; i++) {
      const keyAt = r.pos;
      const key = await r.string('metadata key', MAX_KEY_BYTES);
      if (metadata.has(key)) r.fail(`duplicate metadata key ${JSON.stringify(key)}`, keyAt);
      const typeAt = r.pos;
      const type = await r.u32(`type of ${key}`);
      checkType(r, type, typeAt);
      const valueAt = r.pos;
      const value = await readValue(r, type, key, 0);
      if (key === 'general.alignment') {
        if (type !== T.U32) r.fail(`general.alignment must be a u32, not ${TYPE_NAMES[type]}`, typeAt);
        const a = value as number;
        if (a === 0 || (a & (a - 1)) !== 0) r.fail(`general.alignment ${a} is not a power of two`, valueAt);
        alignment = a;
      }
      metadata.set(key, value);
    }

    const tensors: TensorInfo[] = [];
    const names = new Set<string>();
    let expectedOffset = 0;
    for (let i = 0n; i < tensorCount; i++) {
      const nameAt = r.pos;
      const name = await r.string('tensor name', MAX_NAME_BYTES);
      if (names.has(name)) r.fail(`duplicate tensor name ${JSON.stringify(name)}`, nameAt);
      names.add(name);

      const nDimsAt = r.pos;
      const nDims = await r.u32(`dimension count of ${name}`);
      if (nDims > MAX_DIMS) r.fail(`tensor ${name} has ${nDims} dimensions, at most ${MAX_DIMS} allowed`, nDimsAt);
      const ne: bigint[] = [];
      let elems = 1n;
      for (let d = 0; d < nDims; d++) {
        const dimAt = r.pos;
        const n = await r.u64(`dimension ${d} of ${name}`);
        if (n > INT64_MAX) r.fail(`dimension ${d} of ${name} is negative as int64`, dimAt);
        elems *= n;
        if (elems > INT64_MAX) r.fail(`dimensions of ${name} overflow int64 elements`, dimAt);
        ne.push(n);
      }

      const typeAt = r.pos;
      const typeId = await r.u32(`type of ${name}`);
      const dtypeName = GGML_TYPES[typeId];
      if (dtypeName === undefined) r.fail(`tensor ${name} has unknown ggml type ${typeId}`, typeAt);
      const dtype = dtypeByName(dtypeName);
      if (!dtype) r.fail(`internal: ggml type ${dtypeName} missing from dtypes`, typeAt);
      const ne0 = ne.length > 0 ? ne[0] : 1n;
      if (ne0 % BigInt(dtype.blockElems) !== 0n) {
        r.fail(`tensor ${name}: ne[0]=${ne0} is not a multiple of the ${dtypeName} block size ${dtype.blockElems}`, typeAt);
      }
      // A dimension past 2^53 cannot be held exactly as a number, and no file we can read holds
      // such a tensor: tensorByteLength refuses the non-integer and the error says too large.
      const shape = ne.map((n) => (n > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(n))).reverse();
      const length = tensorByteLength(dtype, shape);
      if (length === undefined) r.fail(`tensor ${name} of ${elems} elements is too large`, nDimsAt);

      const offAt = r.pos;
      const offset = await r.u64(`offset of ${name}`);
      if (offset !== BigInt(expectedOffset)) {
        r.fail(`tensor ${name} has offset ${offset}, expected ${expectedOffset} (tensors must be contiguous and aligned to ${alignment})`, offAt);
      }
      tensors.push({ name, dtype: dtypeName, shape, offset: expectedOffset, length });
      expectedOffset = padTo(expectedOffset + length, alignment);
    }

    const infoEnd = r.pos;
    const segments: Segment[] = [];
    if (tensors.length === 0) {
      segments.push({ kind: 'bytes', offset: 0, length: src.size });
    } else {
      const dataStart = padTo(infoEnd, alignment);
      if (dataStart > src.size) r.fail(`data section at ${dataStart} starts past the end of the file`, infoEnd);
      segments.push({ kind: 'bytes', offset: 0, length: dataStart });
      let pos = dataStart;
      for (const t of tensors) {
        const at = dataStart + t.offset;
        if (at + t.length > src.size) {
          r.fail(`data of tensor ${t.name} (${t.length} bytes at ${at}) runs past the end of the file`, Math.min(at, src.size));
        }
        segments.push({ kind: 'bytes', offset: pos, length: at - pos });
        segments.push({ kind: 'tensor', offset: at, length: t.length, name: t.name, dtype: t.dtype, shape: t.shape });
        pos = at + t.length;
      }
      segments.push({ kind: 'bytes', offset: pos, length: src.size - pos });
    }

    return {
      format: FORMAT,
      size: src.size,
      segments: normalizeSegments(segments),
      info: { version, alignment, tensorCount: tensors.length, metadata: Object.fromEntries(metadata) },
    };
  },
};
