/**
 * safetensors: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the tensor
 * buffer. The header is kept verbatim (writers order and pad it differently, and checkout must
 * be byte-exact); each tensor's bytes become one tensor segment.
 *
 * The reader makes every check the reference implementation makes, and a few it leaves out
 * (duplicate keys, unknown entry fields), because a file ckpt accepts must load everywhere.
 */
import type { ByteSource } from '../core/byteSource.js';
import { dtypeByName, tensorByteLength } from '../core/dtypes.js';
import type { DType } from '../core/dtypes.js';
import { FormatError, UsageError } from '../core/errors.js';
import type { Layout, Segment, TensorSegment } from '../core/layout.js';
import type { CheckpointFormat } from './checkpointFormat.js';

const FORMAT = 'safetensors';
const PREFIX = 8;
/** The reference reader's MAX_HEADER_SIZE. */
export const MAX_HEADER_SIZE = 100_000_000;
// Deeper than any real header (object > entry > array); bounds recursion on hostile input.
const MAX_DEPTH = 32;

const fail = (offset: number, fault: string): never => {
  throw new FormatError(FORMAT, offset, fault);
};

/** GGML block types share the dtype table but are not safetensors dtypes. */
function safetensorsDType(name: string): DType | undefined {
  const d = dtypeByName(name);
  return d && d.kind !== 'quant' ? d : undefined;
}

// ---------------------------------------------------------------------------------------------
// A small JSON reader that keeps what JSON.parse throws away: where each value starts (so a
// fault names its byte offset), duplicate keys (JSON.parse keeps the last one silently) and the
// raw text of numbers (JSON.parse turns 2.0 into 2 and rounds integers past 2^53).

type JsonValue =
  | { type: 'object'; at: number; members: JsonMember[] }
  | { type: 'array'; at: number; items: JsonValue[] }
  | { type: 'string'; at: number; value: string }
  | { type: 'number'; at: number; raw: string }
  | { type: 'boolean'; at: number; value: boolean }
  | { type: 'null'; at: number };

interface JsonMember {
  key: string;
  keyAt: number;
  value: JsonValue;
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const HEX4 = /^[0-9a-fA-F]{4}$/;
const SIMPLE_ESCAPES: Record<string, string> = {
  '"': '"',
  '\\': '\\',
  '/': '/',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
};

class HeaderReader {
  private pos = 0;
  private readonly encoder = new TextEncoder();

  constructor(private readonly text: string) {}

  /** File offset of a character index: the header starts at byte 8 and may hold multi-byte UTF-8. */
  offsetOf(at: number): number {
    return PREFIX + this.encoder.encode(this.text.slice(0, at)).byteLength;
  }

  fail(at: number, fault: string): never {
    return fail(this.offsetOf(at), fault);
  }

  readDocument(): JsonValue {
    this.skipSpace();
    const v = this.readValue(0);
    this.skipSpace();
    if (this.pos < this.text.length) this.fail(this.pos, 'header JSON has unexpected content after the top-level value');
    return v;
  }

  private skipSpace(): void {
    const t = this.text;
    while (this.pos < t.length) {
      const c = t.charCodeAt(this.pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      this.pos++;
    }
  }

  private readValue(depth: number): JsonValue {
    if (depth > MAX_DEPTH) this.fail(this.pos, `header JSON is nested more than ${MAX_DEPTH} levels deep`);
    const at = this.pos;
    const c = this.text[at];
    if (c === undefined) return this.fail(at, 'header is not valid JSON: it ends where a value should be');
    if (c === '{') return this.readObject(depth);
    if (c === '[') return this.readArray(depth);
    if (c === '"') return { type: 'string', at, value: this.readString() };
    if (this.text.startsWith('true', at)) {
      this.pos += 4;
      return { type: 'boolean', at, value: true };
    }
    if (this.text.startsWith('false', at)) {
      this.pos += 5;
      return { type: 'boolean', at, value: false };
    }
    if (this.text.startsWith('null', at)) {
      this.pos += 4;
      return { type: 'null', at };
    }
    NUMBER.lastIndex = at;
    const m = NUMBER.exec(this.text);
    if (m) {
      this.pos += m[0].length;
      return { type: 'number', at, raw: m[0] };
    }
    return this.fail(at, `header is not valid JSON: unexpected ${showChar(this.text, at)}`);
  }

  private expect(ch: string, what: string): void {
    if (this.text[this.pos] !== ch) {
      this.fail(this.pos, `header is not valid JSON: expected ${what}, found ${showChar(this.text, this.pos)}`);
    }
    this.pos++;
  }

  private readObject(depth: number): JsonValue {
    const at = this.pos++;
    const members: JsonMember[] = [];
    const seen = new Set<string>();
    this.skipSpace();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return { type: 'object', at, members };
    }
    for (;;) {
      this.skipSpace();
      const keyAt = this.pos;
      if (this.text[keyAt] !== '"') this.expect('"', 'a quoted key');
      const key = this.readString();
      if (seen.has(key)) this.fail(keyAt, `duplicate key ${JSON.stringify(key)} in header`);
      seen.add(key);
      this.skipSpace();
      this.expect(':', '":"');
      this.skipSpace();
      members.push({ key, keyAt, value: this.readValue(depth + 1) });
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect('}', '"," or "}"');
      return { type: 'object', at, members };
    }
  }

  private readArray(depth: number): JsonValue {
    const at = this.pos++;
    const items: JsonValue[] = [];
    this.skipSpace();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return { type: 'array', at, items };
    }
    for (;;) {
      this.skipSpace();
      items.push(this.readValue(depth + 1));
      this.skipSpace();
      if (this.text[this.pos] === ',') {
        this.pos++;
        continue;
      }
      this.expect(']', '"," or "]"');
      return { type: 'array', at, items };
    }
  }

  private readString(): string {
    const t = this.text;
    const at = this.pos++;
    let out = '';
    let run = this.pos;
    for (;;) {
      if (this.pos >= t.length) this.fail(at, 'header is not valid JSON: unterminated string');
      const c = t.charCodeAt(this.pos);
      if (c === 0x22) {
        out += t.slice(run, this.pos++);
        return out;
      }
      if (c < 0x20) this.fail(this.pos, 'header is not valid JSON: control character inside a string');
      if (c !== 0x5c) {
        this.pos++;
        continue;
      }
      out += t.slice(run, this.pos);
      const esc = t[this.pos + 1];
      if (esc !== undefined && esc in SIMPLE_ESCAPES) {
        out += SIMPLE_ESCAPES[esc];
        this.pos += 2;
      } else if (esc === 'u' && HEX4.test(t.slice(this.pos + 2, this.pos + 6))) {
        out += String.fromCharCode(parseInt(t.slice(this.pos + 2, this.pos + 6), 16));
        this.pos += 6;
      } else {
        this.fail(this.pos, 'header is not valid JSON: invalid escape in string');
      }
      run = this.pos;
    }
  }
}

/** A character as a fault message shows it: invisible ones (a BOM, a NUL) by code point. */
function showChar(text: string, at: number): string {
  const cp = text.codePointAt(at);
  if (cp === undefined) return 'end of header';
  if (cp > 0x20 && cp < 0x7f) return JSON.stringify(String.fromCodePoint(cp));
  return `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
}

function typeName(v: JsonValue): string {
  return v.type === 'array' || v.type === 'object' ? `an ${v.type}` : `a ${v.type}`;
}

// ---------------------------------------------------------------------------------------------

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
  /** Byte length the dtype and shape call for. */
  bytes: number;
  /** Header order, to keep the sort of equal offsets (empty tensors) deterministic. */
  index: number;
}

/** A non-negative integer that fits a JS number exactly, or a fault naming `what`. */
function readCount(r: HeaderReader, v: JsonValue, what: string): number {
  if (v.type !== 'number') return r.fail(v.at, `${what} is ${typeName(v)}, not an integer`);
  if (v.raw.startsWith('-') && /^-(0|[1-9][0-9]*)$/.test(v.raw)) return r.fail(v.at, `${what} is negative (${v.raw})`);
  if (!/^(0|[1-9][0-9]*)$/.test(v.raw)) return r.fail(v.at, `${what} is not an integer (${v.raw})`);
  const n = BigInt(v.raw);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) return r.fail(v.at, `${what} is too large (${v.raw})`);
  return Number(n);
}

function readEntry(r: HeaderReader, m: JsonMember, index: number): Entry {
  const label = `tensor ${JSON.stringify(m.key)}`;
  const v = m.value;
  if (v.type !== 'object') return r.fail(v.at, `${label} is ${typeName(v)}, not an object`);
  const field = new Map<string, JsonValue>();
  for (const f of v.members) {
    if (f.key !== 'dtype' && f.key !== 'shape' && f.key !== 'data_offsets') {
      r.fail(f.keyAt, `${label} has unknown field ${JSON.stringify(f.key)}`);
    }
    field.set(f.key, f.value);
  }
  const need = (k: string): JsonValue => field.get(k) ?? r.fail(v.at, `${label} is missing "${k}"`);

  const dtv = need('dtype');
  if (dtv.type !== 'string') return r.fail(dtv.at, `${label}: dtype is ${typeName(dtv)}, not a string`);
  const dtype = safetensorsDType(dtv.value);
  if (!dtype) return r.fail(dtv.at, `${label}: unknown dtype ${JSON.stringify(dtv.value)}`);

  const shv = need('shape');
  if (shv.type !== 'array') return r.fail(shv.at, `${label}: shape is ${typeName(shv)}, not an array`);
  const shape = shv.items.map((d, i) => readCount(r, d, `${label}: shape dimension ${i}`));
  let elements = 1n;
  for (const d of shape) elements *= BigInt(d);
  if (elements > BigInt(Number.MAX_SAFE_INTEGER)) {
    r.fail(shv.at, `${label}: shape [${shape.join(', ')}] overflows (${elements} elements)`);
  }
  const bytes = tensorByteLength(dtype, shape);
  if (bytes === undefined) {
    return r.fail(shv.at, `${label}: shape [${shape.join(', ')}] of ${dtype.name} does not fill whole bytes`);
  }

  const dov = need('data_offsets');
  if (dov.type !== 'array') return r.fail(dov.at, `${label}: data_offsets is ${typeName(dov)}, not an array`);
  if (dov.items.length !== 2) {
    return r.fail(dov.at, `${label}: data_offsets has ${dov.items.length} items, not [begin, end]`);
  }
  const begin = readCount(r, dov.items[0], `${label}: data_offsets begin`);
  const end = readCount(r, dov.items[1], `${label}: data_offsets end`);
  if (begin > end) return r.fail(dov.at, `${label}: data_offsets begin ${begin} is after end ${end}`);
  return { name: m.key, dtype: dtype.name, shape, begin, end, bytes, index };
}

function readMetadata(r: HeaderReader, v: JsonValue): Record<string, string> | undefined {
  // The reference reader takes __metadata__ as an Option, so an explicit null means none.
  if (v.type === 'null') return undefined;
  if (v.type !== 'object') return r.fail(v.at, `__metadata__ is ${typeName(v)}, not an object of strings`);
  const pairs = v.members.map((m): [string, string] =>
    m.value.type === 'string'
      ? [m.key, m.value.value]
      : r.fail(m.value.at, `__metadata__ value for ${JSON.stringify(m.key)} is ${typeName(m.value)}, not a string`),
  );
  // fromEntries defines own properties, so a key named "__proto__" is kept, not swallowed.
  return Object.fromEntries(pairs);
}

async function parse(src: ByteSource): Promise<Layout> {
  const size = src.size;
  if (size < PREFIX) fail(0, `file is ${size} bytes, shorter than the 8-byte header length`);
  const prefix = await src.read(0, PREFIX);
  const n64 = new DataView(prefix.buffer, prefix.byteOffset, PREFIX).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_SIZE)) {
    fail(0, `header length ${n64} is too large (at most ${MAX_HEADER_SIZE} bytes)`);
  }
  const n = Number(n64);
  if (PREFIX + n > size) {
    fail(0, `header length ${n} runs past the end of the file (${size} bytes, header would end at ${PREFIX + n})`);
  }

  const raw = await src.read(PREFIX, n);
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM in the text, so character positions still map to bytes and
    // the JSON reader rejects it, as the reference reader does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw);
  } catch {
    return fail(PREFIX, 'header is not valid UTF-8');
  }

  const r = new HeaderReader(text);
  const top = r.readDocument();
  if (top.type !== 'object') return r.fail(top.at, `header is ${typeName(top)}, not a JSON object`);

  let metadata: Record<string, string> | undefined;
  const entries: Entry[] = [];
  for (const m of top.members) {
    if (m.key === '__metadata__') metadata = readMetadata(r, m.value);
    else entries.push(readEntry(r, m, entries.length));
  }

  const dataStart = PREFIX + n;
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end || a.index - b.index);
  let pos = 0;
  for (const e of entries) {
    const label = `tensor ${JSON.stringify(e.name)}`;
    if (e.begin < pos) {
      fail(dataStart + e.begin, `${label} data [${e.begin}, ${e.end}) overlaps the previous tensor, which ends at ${pos}`);
    }
    if (e.begin > pos) {
      fail(dataStart + e.begin, `${label} data begins at ${e.begin}, leaving a gap after the previous tensor, which ends at ${pos}`);
    }
    if (e.end - e.begin !== e.bytes) {
      fail(
        dataStart + e.begin,
        `${label} data is ${e.end - e.begin} bytes, but ${e.dtype} [${e.shape.join(', ')}] needs ${e.bytes}`,
      );
    }
    pos = e.end;
  }

  if (dataStart + pos > size) {
    const cut = entries.find((e) => dataStart + e.end > size) as Entry;
    fail(
      dataStart + cut.begin,
      `tensor ${JSON.stringify(cut.name)} data runs past the end of the file: it ends at ${dataStart + cut.end}, ` +
        `the file has ${size} bytes`,
    );
  }
  if (dataStart + pos < size) {
    fail(dataStart + pos, `${size - dataStart - pos} trailing bytes after the end of the tensor data`);
  }

  const segments: Segment[] = [{ kind: 'bytes', offset: 0, length: dataStart }];
  for (const e of entries) {
    const seg: TensorSegment = {
      kind: 'tensor',
      offset: dataStart + e.begin,
      length: e.end - e.begin,
      name: e.name,
      dtype: e.dtype,
      shape: e.shape,
    };
    segments.push(seg);
  }
  const layout: Layout = { format: FORMAT, size, segments };
  if (metadata) layout.info = { metadata };
  return layout;
}

function detect(head: Uint8Array, size: number): boolean {
  if (head.byteLength < PREFIX + 1) return false;
  const n = new DataView(head.buffer, head.byteOffset, PREFIX).getBigUint64(0, true);
  if (n < 2n || n > BigInt(MAX_HEADER_SIZE) || Number(n) + PREFIX > size) return false;
  // '{', or a space: writers may pad the front of the header to align the data.
  return head[PREFIX] === 0x7b || head[PREFIX] === 0x20;
}

export const safetensors: CheckpointFormat = {
  name: FORMAT,
  detect,
  parse: (src) => parse(src),
};

// ---------------------------------------------------------------------------------------------
// Writing: the reference writer's shape of header (compact JSON, __metadata__ first, padded with
// spaces so the data starts 8-aligned), with tensors laid out in the order given.

export interface SafetensorsHeaderTensor {
  name: string;
  dtype: string;
  shape: number[];
  length: number;
}

export interface SafetensorsTensor {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** The 8-byte length prefix and the padded header for tensors stored contiguously in this order. */
export function encodeSafetensorsHeader(
  tensors: readonly SafetensorsHeaderTensor[],
  metadata?: Record<string, string>,
): Uint8Array {
  const parts: string[] = [];
  if (metadata) {
    const kv = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string') throw new UsageError(`safetensors metadata value for ${JSON.stringify(k)} is not a string`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${kv.join(',')}}`);
  }
  const names = new Set<string>();
  let pos = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new UsageError('a safetensors tensor cannot be named __metadata__');
    if (names.has(t.name)) throw new UsageError(`duplicate safetensors tensor name ${JSON.stringify(t.name)}`);
    names.add(t.name);
    const dtype = safetensorsDType(t.dtype);
    if (!dtype) throw new UsageError(`unknown safetensors dtype ${t.dtype} for tensor ${JSON.stringify(t.name)}`);
    const bytes = tensorByteLength(dtype, t.shape);
    if (bytes === undefined) {
      throw new UsageError(`tensor ${JSON.stringify(t.name)}: invalid shape [${t.shape.join(', ')}] for ${t.dtype}`);
    }
    if (bytes !== t.length) {
      throw new UsageError(
        `tensor ${JSON.stringify(t.name)}: ${t.dtype} [${t.shape.join(', ')}] needs ${bytes} bytes, got ${t.length}`,
        { tensor: t.name, expected: bytes, actual: t.length },
      );
    }
    parts.push(
      `${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(',')}],` +
        `"data_offsets":[${pos},${pos + bytes}]}`,
    );
    pos += bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.byteLength / 8) * 8;
  if (n > MAX_HEADER_SIZE) throw new UsageError(`safetensors header would be ${n} bytes, over ${MAX_HEADER_SIZE}`);
  const out = new Uint8Array(PREFIX + n).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, PREFIX);
  return out;
}

/** A whole safetensors file in memory: for tests and small exports. */
export function writeSafetensors(tensors: readonly SafetensorsTensor[], metadata?: Record<string, string>): Uint8Array {
  const header = encodeSafetensorsHeader(
    tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, length: t.data.byteLength })),
    metadata,
  );
  const out = new Uint8Array(header.byteLength + tensors.reduce((s, t) => s + t.data.byteLength, 0));
  out.set(header, 0);
  let pos = header.byteLength;
  for (const t of tensors) {
    out.set(t.data, pos);
    pos += t.data.byteLength;
  }
  return out;
}
