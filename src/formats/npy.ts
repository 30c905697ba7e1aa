/**
 * NumPy .npy, format versions 1.0, 2.0 and 3.0. The magic, version and header dict are kept as
 * one `bytes` segment and the array data as one `tensor` segment named 'array'. The header is a
 * Python literal, read here by a small parser that accepts only literals (nothing is evaluated).
 */
import type { ByteSource } from '../core/byteSource.js';
import { tensorByteLength } from '../core/dtypes.js';
import { FormatError } from '../core/errors.js';
import type { Segment } from '../core/layout.js';
import { normalizeSegments } from '../core/layout.js';
import type { CheckpointFormat } from './checkpointFormat.js';
import { MAX_HEADER_SIZE } from './safetensors.js';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
// numpy's reader refuses headers over 10,000 bytes unless allow_pickle=True, because it evaluates
// them with ast.literal_eval; np.save writes longer ones for structured dtypes with many fields.
// ckpt's parser evaluates nothing and is linear, so it takes headers up to the bound it gives a
// safetensors header (100 MB), and bounds the values in them.
const MAX_HEADER_BYTES = MAX_HEADER_SIZE;
const MAX_LITERAL_DEPTH = 32;
const MAX_LITERAL_VALUES = 1_000_000;

/** ckpt dtype of a little-endian (or byte-sized) numpy type code: kind + item size. */
const NUMPY_DTYPES: Record<string, string> = {
  b1: 'BOOL',
  i1: 'I8',
  u1: 'U8',
  i2: 'I16',
  u2: 'U16',
  f2: 'F16',
  i4: 'I32',
  u4: 'U32',
  f4: 'F32',
  i8: 'I64',
  u8: 'U64',
  f8: 'F64',
  c8: 'C64',
};

export function isNpyMagic(head: Uint8Array): boolean {
  return head.length >= 10 && MAGIC.every((b, i) => head[i] === b);
}

/** A Python tuple, kept apart from a list because numpy insists the shape is a tuple. */
class PyTuple {
  constructor(readonly items: PyLiteral[]) {}
}
type PyLiteral = string | number | boolean | null | PyLiteral[] | PyTuple | Map<string, PyLiteral>;

/**
 * Parses the Python literals numpy writes in a header: dicts with string keys, tuples, lists,
 * strings, integers, True/False/None. `fail` gets the index of the fault in `text`.
 */
function parsePyLiteral(text: string, fail: (index: number, fault: string) => never): PyLiteral {
  let i = 0;
  let values = 0;
  const ws = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  };
  const expect = (c: string) => {
    ws();
    if (text[i] !== c) fail(i, `expected '${c}' at character ${i} of the header`);
    i++;
  };

  // Items up to `close`, comma-separated, a trailing comma allowed; reports whether any comma
  // was seen, since "(3)" is an int and "(3,)" a tuple.
  const items = (close: string, item: () => void): boolean => {
    let comma = false;
    ws();
    while (text[i] !== close) {
      item();
      ws();
      if (text[i] === ',') {
        comma = true;
        i++;
        ws();
      } else if (text[i] !== close) {
        fail(i, `expected ',' or '${close}' at character ${i} of the header`);
      }
    }
    i++;
    return comma;
  };

  const str = (): string => {
    const q = text[i++];
    let out = '';
    for (;;) {
      if (i >= text.length) fail(i, 'unterminated string in the header');
      const c = text[i++];
      if (c === q) return out;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = text[i++];
      const simple: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', n: '\n', t: '\t', r: '\r', '0': '\0' };
      if (e in simple) out += simple[e];
      else if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i, i + 2))) {
        out += String.fromCharCode(parseInt(text.slice(i, i + 2), 16));
        i += 2;
      } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i, i + 4))) {
        out += String.fromCharCode(parseInt(text.slice(i, i + 4), 16));
        i += 4;
      } else fail(i - 1, `unsupported escape \\${e ?? ''} in the header`);
    }
  };

  const value = (depth: number): PyLiteral => {
    if (depth > MAX_LITERAL_DEPTH) fail(i, `header literal nests deeper than ${MAX_LITERAL_DEPTH}`);
    if (++values > MAX_LITERAL_VALUES) fail(i, `header holds more than ${MAX_LITERAL_VALUES} values`);
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const d = new Map<string, PyLiteral>();
      items('}', () => {
        const at = i;
        if (text[i] !== "'" && text[i] !== '"') fail(i, `header dict key at character ${i} is not a string`);
        const k = str();
        if (d.has(k)) fail(at, `duplicate header key '${k}'`);
        expect(':');
        d.set(k, value(depth + 1));
      });
      return d;
    }
    if (c === '(' || c === '[') {
      i++;
      const out: PyLiteral[] = [];
      const comma = items(c === '(' ? ')' : ']', () => {
        out.push(value(depth + 1));
      });
      if (c === '[') return out;
      // "(x)" is just x in Python.
      return out.length === 1 && !comma ? out[0] : new PyTuple(out);
    }
    if (c === "'" || c === '"') return str();
    const m = /^-?[0-9]+L?|^[A-Za-z_]+/.exec(text.slice(i, i + 64));
    if (!m) fail(i, `unexpected ${c === undefined ? 'end' : JSON.stringify(c)} at character ${i} of the header`);
    const tok = m[0];
    i += tok.length;
    if (tok === 'True') return true;
    if (tok === 'False') return false;
    if (tok === 'None') return null;
    if (!/^-?[0-9]/.test(tok)) fail(i - tok.length, `unexpected name ${tok} in the header`);
    const n = Number(tok.replace(/L$/, ''));
    if (!Number.isSafeInteger(n)) fail(i - tok.length, `integer ${tok} in the header is too large`);
    return n;
  };

  const v = value(0);
  ws();
  if (i < text.length) fail(i, `unexpected text after the header literal at character ${i}`);
  return v;
}

/** The literal in JSON form (tuples become arrays, dicts objects) for info and messages. */
function toJson(v: PyLiteral): unknown {
  if (v instanceof PyTuple) return v.items.map(toJson);
  if (Array.isArray(v)) return v.map(toJson);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, toJson(x)]));
  return v;
}

/** True when a structured descr (a list of (name, type[, shape]) tuples) has an object field. */
function hasObjectField(descr: PyLiteral): boolean {
  if (typeof descr === 'string') return /^[|<>=]?O/.test(descr);
  const fields = Array.isArray(descr) ? descr : [];
  return fields.some((f) => f instanceof PyTuple && f.items.length >= 2 && hasObjectField(f.items[1]));
}

export interface NpyHeader {
  version: '1.0' | '2.0' | '3.0';
  /** Absolute offset of the array data, right after the header. */
  dataOffset: number;
  /** Bytes of array data, exactly what `limit` left after the header. */
  dataLength: number;
  /** The descr as written: a type string, or a list for structured dtypes. */
  descr: unknown;
  fortranOrder: boolean;
  shape: number[];
  /** ckpt dtype when the data can be a tensor segment; absent when it is kept as opaque bytes. */
  dtype?: string;
  /** Why the data is kept opaque. */
  warning?: string;
}

/**
 * Reads the .npy object that starts at `offset` and ends exactly at `limit` (the file's end, or
 * an npz member's), checking that the data after the header has the shape's byte length.
 * Errors are reported as `formatName` ('npy', 'npz') with absolute offsets.
 */
export async function parseNpyHeaderAt(
  src: ByteSource,
  offset: number,
  limit: number,
  formatName: string,
): Promise<NpyHeader> {
  const fail: (at: number, fault: string) => never = (at, fault) => {
    throw new FormatError(formatName, Math.max(0, Math.min(at, src.size - 1)), fault);
  };
  if (limit - offset < 10) fail(offset, `${limit - offset} bytes are too short for a .npy header`);
  const pre = await src.read(offset, Math.min(12, limit - offset));
  if (!MAGIC.every((b, i) => pre[i] === b)) fail(offset, 'bad magic, expected \\x93NUMPY');
  const major = pre[6];
  const minor = pre[7];
  if (![1, 2, 3].includes(major) || minor !== 0) {
    fail(offset + 6, `unsupported .npy version ${major}.${minor}; numpy writes 1.0, 2.0 and 3.0`);
  }
  const version = `${major}.0` as NpyHeader['version'];
  let headerLen: number;
  let prefix: number;
  if (major === 1) {
    headerLen = pre[8] | (pre[9] << 8);
    prefix = 10;
  } else {
    if (pre.length < 12) fail(offset, `${limit - offset} bytes are too short for a .npy ${version} header`);
    headerLen = new DataView(pre.buffer, pre.byteOffset, 12).getUint32(8, true);
    prefix = 12;
  }
  const headerStart = offset + prefix;
  if (headerLen > MAX_HEADER_BYTES) {
    fail(offset + 8, `header of ${headerLen} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (headerLen > limit - headerStart) {
    fail(offset + 8, `header length ${headerLen} runs past the end (${limit - headerStart} bytes left)`);
  }
  const raw = await src.read(headerStart, headerLen);
  let text = '';
  if (major === 3) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      fail(headerStart, 'header is not valid UTF-8');
    }
  } else {
    text = new TextDecoder('latin1').decode(raw);
  }
  // Character index = byte index for latin1; for UTF-8 it is close enough to find the fault.
  const lit = parsePyLiteral(text, (i, fault) => fail(headerStart + i, fault));

  if (!(lit instanceof Map)) fail(headerStart, 'header is not a dict');
  const keys = [...lit.keys()].sort();
  if (keys.join(',') !== 'descr,fortran_order,shape') {
    fail(headerStart, `header keys are [${keys.join(', ')}], expected [descr, fortran_order, shape]`);
  }
  const shapeLit = lit.get('shape');
  if (!(shapeLit instanceof PyTuple) || !shapeLit.items.every((d) => typeof d === 'number')) {
    fail(headerStart, `shape ${JSON.stringify(toJson(shapeLit ?? null))} is not a tuple of integers`);
  }
  const shape = shapeLit.items as number[];
  if (shape.some((d) => d < 0)) fail(headerStart, `shape (${shape.join(', ')}) has a negative dimension`);
  const fortranOrder = lit.get('fortran_order');
  if (typeof fortranOrder !== 'boolean') fail(headerStart, 'fortran_order is not True or False');
  const descr = lit.get('descr')!;
  if (hasObjectField(descr)) {
    fail(headerStart, `dtype ${JSON.stringify(toJson(descr))}: object arrays are pickles, and ckpt never stores code`);
  }

  const dataOffset = headerStart + headerLen;
  const present = limit - dataOffset;
  const out: NpyHeader = {
    version,
    dataOffset,
    dataLength: present,
    descr: toJson(descr),
    fortranOrder: fortranOrder as boolean,
    shape,
  };

  // Item size, when the descr says it; with it the data length must match the shape exactly.
  let itemBytes: number | undefined;
  if (typeof descr === 'string') {
    const m = /^([<>|=]?)([a-zA-Z])(\d+)(\[\w+\])?$/.exec(descr);
    if (!m) {
      out.warning = `dtype '${descr}' is not understood; its data is kept as opaque bytes`;
    } else {
      const [, order, kind, size] = m;
      itemBytes = Number(size) * (kind === 'U' ? 4 : 1);
      const ours = NUMPY_DTYPES[kind + size];
      // numpy writes '<', '>' or '|'; a bare or '=' (native) order can only have come from a
      // little-endian machine, as every host ckpt runs on is.
      if (ours !== undefined && (order !== '>' || itemBytes === 1)) {
        out.dtype = ours;
      } else if (ours !== undefined && order === '>') {
        out.warning = `big-endian dtype '${descr}' is kept as opaque bytes`;
      } else {
        out.warning = `dtype '${descr}' has no ckpt tensor type; its data is kept as opaque bytes`;
      }
    }
  } else {
    out.warning = 'structured dtype is kept as opaque bytes';
  }

  if (itemBytes !== undefined) {
    const expected = tensorByteLength({ name: 'item', kind: 'uint', bits: itemBytes * 8, blockElems: 1 }, shape);
    if (expected === undefined) fail(headerStart, `shape (${shape.join(', ')}) is too large`);
    if (present < expected!) {
      fail(limit, `truncated data: shape (${shape.join(', ')}) of '${descr}' needs ${expected} bytes, ${present} present`);
    }
    if (present > expected!) {
      fail(dataOffset + expected!, `${present - expected!} trailing bytes after the array data`);
    }
  }
  return out;
}

export const npy: CheckpointFormat = {
  name: 'npy',

  detect(head) {
    return isNpyMagic(head);
  },

  async parse(src) {
    const h = await parseNpyHeaderAt(src, 0, src.size, 'npy');
    const segments: Segment[] = [{ kind: 'bytes', offset: 0, length: h.dataOffset }];
    segments.push(
      h.dtype !== undefined
        ? { kind: 'tensor', offset: h.dataOffset, length: h.dataLength, name: 'array', dtype: h.dtype, shape: h.shape }
        : { kind: 'bytes', offset: h.dataOffset, length: h.dataLength },
    );
    return {
      format: 'npy',
      size: src.size,
      segments: normalizeSegments(segments),
      // A Fortran-ordered array keeps its logical shape; its bytes are column-major.
      info: { version: h.version, descr: h.descr, fortranOrder: h.fortranOrder, shape: h.shape },
      ...(h.warning ? { warnings: [h.warning] } : {}),
    };
  },
};
