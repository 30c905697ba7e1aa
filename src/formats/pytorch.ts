/**
 * PyTorch `torch.save` files in the zip format (the default since 1.6): a zip holding
 * `<root>/data.pkl` (the pickled object), `<root>/data/<key>` (raw storage bytes, one record per
 * storage) and small records (version, byteorder, serialization id).
 *
 * The pickle is walked by pickleMachine, which evaluates nothing; this file gives the symbolic tree
 * its meaning. Each storage record becomes one tensor segment (so tied weights and views dedup as
 * one run of bytes), every tensor in the object becomes a TensorView onto it, and the rest of the
 * object (step, loss, hyperparameters) lands in `info.values` as JSON-friendly data. A pickle that
 * names any global outside a small allowlist is refused: loading it with torch would import and
 * call whatever it names.
 */
import type { ByteSource } from '../core/byteSource.js';
import { dtypeByName } from '../core/dtypes.js';
import { FormatError, UnsafePickleError } from '../core/errors.js';
import type { Layout, Segment, TensorView } from '../core/layout.js';
import { normalizeSegments } from '../core/layout.js';
import type { CheckpointFormat, ParseOptions } from './checkpointFormat.js';
import { isNode, kindOf, MAX_DECIMAL_DIGITS, PickleBudget, runPickle } from './pickleMachine.js';
import type { PCall, PickleValue } from './pickleMachine.js';
import { readZipArchive } from './zipArchive.js';
import type { ZipEntry } from './zipArchive.js';

const FORMAT = 'pytorch';

/** Storage classes torch pickles as the persistent id's storage type, and their element dtypes. */
const STORAGE_DTYPES: Record<string, string | undefined> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  ComplexFloatStorage: 'C64',
  // No dtype ckpt can name: their records are kept as plain bytes.
  ComplexDoubleStorage: undefined,
  QUInt8Storage: undefined,
  QInt8Storage: undefined,
  QInt32Storage: undefined,
  QUInt4x2Storage: undefined,
  QUInt2x4Storage: undefined,
  // Bytes with no dtype of their own: the tensor's dtype (_rebuild_tensor_v3) says what they hold.
  UntypedStorage: 'U8',
};

const TORCH_DTYPES: Record<string, string | undefined> = {
  float32: 'F32',
  float: 'F32',
  float64: 'F64',
  double: 'F64',
  float16: 'F16',
  half: 'F16',
  bfloat16: 'BF16',
  int64: 'I64',
  long: 'I64',
  int32: 'I32',
  int: 'I32',
  int16: 'I16',
  short: 'I16',
  int8: 'I8',
  uint8: 'U8',
  uint16: 'U16',
  uint32: 'U32',
  uint64: 'U64',
  bool: 'BOOL',
  complex64: 'C64',
  cfloat: 'C64',
  float8_e4m3fn: 'F8_E4M3',
  float8_e5m2: 'F8_E5M2',
  float8_e4m3fnuz: 'F8_E4M3FNUZ',
  float8_e5m2fnuz: 'F8_E5M2FNUZ',
  float8_e8m0fnu: 'F8_E8M0',
  complex128: undefined,
  cdouble: undefined,
  complex32: undefined,
  chalf: undefined,
  qint8: undefined,
  quint8: undefined,
  qint32: undefined,
  quint4x2: undefined,
  quint2x4: undefined,
};

const REBUILD_TENSOR = new Set([
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
]);
const REBUILD_PARAMETER = new Set(['torch._utils._rebuild_parameter', 'torch._utils._rebuild_parameter_with_state']);
const REBUILD_FROM_TYPE = 'torch._tensor._rebuild_from_type_v2';
const DICT_LIKE = new Set(['collections.OrderedDict', 'collections.defaultdict', 'argparse.Namespace']);
const NUMPY_SCALAR = new Set(['numpy.core.multiarray.scalar', 'numpy._core.multiarray.scalar']);
const NUMPY_RECONSTRUCT = new Set(['numpy.core.multiarray._reconstruct', 'numpy._core.multiarray._reconstruct']);

/**
 * Globals whose construction runs no user code: what torch.load(weights_only=True) accepts, plus
 * the plain containers and NumPy scalars that training scripts put next to weights. Everything
 * else is refused, including harmless-looking user classes: loading them imports their module.
 */
const SAFE_GLOBALS = new Set<string>([
  ...REBUILD_TENSOR,
  ...REBUILD_PARAMETER,
  REBUILD_FROM_TYPE,
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
  ...Object.keys(TORCH_DTYPES).map((d) => `torch.${d}`),
  'torch.Size',
  'torch.device',
  'torch.Tensor',
  'torch.nn.parameter.Parameter',
  ...DICT_LIKE,
  ...['set', 'frozenset', 'slice', 'complex', 'bytearray', 'list', 'dict', 'tuple', 'int', 'float', 'str', 'bool'].map(
    (n) => `builtins.${n}`,
  ),
  ...NUMPY_SCALAR,
  ...NUMPY_RECONSTRUCT,
  'numpy.dtype',
  'numpy.ndarray',
  '_codecs.encode',
]);

/** Deeper than any real checkpoint nests; keeps the walk's recursion bounded. */
const MAX_DEPTH = 512;

export function isSafeGlobal(name: string): boolean {
  return SAFE_GLOBALS.has(name);
}

export const pytorch: CheckpointFormat = {
  name: FORMAT,
  detect(head) {
    if (head.length < 30 || head[0] !== 0x50 || head[1] !== 0x4b || head[2] !== 0x03 || head[3] !== 0x04) return false;
    const nameLen = head[26] | (head[27] << 8);
    const extraLen = head[28] | (head[29] << 8);
    const visible = new TextDecoder('latin1').decode(head.subarray(30, Math.min(head.length, 30 + nameLen)));
    if (30 + nameLen <= head.length) return /^[^/]+\/data\.pkl$/.test(visible);
    // A long root name hides the end of the first name. torch's writer still shows: records
    // stored, with a data descriptor (flag bit 3), data aligned to 64 bytes. parse confirms.
    const flags = head[6] | (head[7] << 8);
    const method = head[8] | (head[9] << 8);
    return method === 0 && (flags & 0x08) !== 0 && (30 + nameLen + extraLen) % 64 === 0;
  },
  parse: parsePytorch,
};

interface StorageInfo {
  key: string;
  /** Element dtype from the storage class, undefined when ckpt has no name for it. */
  dtype: string | undefined;
  untyped: boolean;
  /** Elements for typed storages, bytes for UntypedStorage (as torch writes it). */
  numel: number;
  entry: ZipEntry;
  offset: number;
}

interface ViewDraft {
  name: string;
  dtype: string;
  shape: number[];
  storageOffset: number;
  stride: number[];
  storage: StorageInfo;
}

async function parsePytorch(src: ByteSource, options: ParseOptions = {}): Promise<Layout> {
  const archive = await readZipArchive(src, FORMAT);
  const pkls = archive.entries.filter((e) => /^[^/]+\/data\.pkl$/.test(e.name));
  if (pkls.length !== 1) {
    throw new FormatError(FORMAT, 0, pkls.length ? 'more than one <root>/data.pkl record' : 'no <root>/data.pkl record');
  }
  const pkl = pkls[0];
  const root = pkl.name.slice(0, -'/data.pkl'.length);
  if (pkl.method !== 0) {
    throw new FormatError(FORMAT, pkl.localHeaderOffset, `${pkl.name} is compressed (method ${pkl.method}); torch stores it`);
  }
  const byName = new Map(archive.entries.map((e) => [e.name, e]));

  const byteorder = byName.get(`${root}/byteorder`);
  if (byteorder) {
    if (byteorder.method !== 0 || byteorder.compressedSize > 16) {
      throw new FormatError(FORMAT, byteorder.localHeaderOffset, 'byteorder record is not a short stored string');
    }
    const order = new TextDecoder('latin1').decode(await src.read(byteorder.dataOffset, byteorder.compressedSize));
    if (order !== 'little') {
      throw new FormatError(FORMAT, byteorder.dataOffset, `byteorder is '${order}'; only little-endian files are supported`);
    }
  }

  const pickleBytes = await src.read(pkl.dataOffset, pkl.compressedSize);
  // One budget for running the pickle and expanding its tree: values, bytes of text and seconds.
  const budget = new PickleBudget(FORMAT);
  const { value, globals } = runPickle(pickleBytes, pkl.dataOffset, FORMAT, budget);
  const unsafe = [...new Set(globals.map((g) => g.name).filter((g) => !isSafeGlobal(g)))];
  const warnings: string[] = [];
  if (unsafe.length > 0) {
    if (!options.allowUnsafePickle) throw new UnsafePickleError(unsafe);
    warnings.push(`pickle names globals that would run code when loaded (allowed): ${unsafe.join(', ')}`);
  }

  const walker = new Walker(root, byName, budget);
  walker.flatten(value, '', 0);
  warnings.push(...walker.warnings);

  const { segments, tensors } = assemble(src.size, root, archive.entries, walker);
  const layout: Layout = {
    format: FORMAT,
    size: src.size,
    segments,
    tensors,
    info: { values: walker.values },
  };
  if (warnings.length) layout.warnings = warnings;
  return layout;
}

/** Tensor segments for the storage records, framing in between, and the views onto them. */
function assemble(
  size: number,
  root: string,
  entries: ZipEntry[],
  walker: Walker,
): { segments: Segment[]; tensors: TensorView[] } {
  const viewsByKey = new Map<string, ViewDraft[]>();
  for (const v of walker.views) {
    const list = viewsByKey.get(v.storage.key) ?? [];
    list.push(v);
    viewsByKey.set(v.storage.key, list);
  }
  const usedNames = new Set<string>();
  const unique = (name: string): string => {
    let n = name;
    for (let i = 2; usedNames.has(n); i++) n = `${name}~${i}`;
    usedNames.add(n);
    return n;
  };
  const segmentOfKey = new Map<string, string>();
  const tensorSegments: Segment[] = [];
  const prefix = `${root}/data/`;
  for (const e of entries) {
    if (!e.name.startsWith(prefix) || e.name.includes('/', prefix.length)) continue;
    const key = e.name.slice(prefix.length);
    const views = viewsByKey.get(key) ?? [];
    const info = walker.storages.get(key);
    if (e.method !== 0) {
      if (info) throw new FormatError(FORMAT, e.localHeaderOffset, `storage record ${e.name} is compressed; torch stores it`);
      continue;
    }
    const { dtype, shape } = segmentShape(e, info, views);
    const name = unique(views[0]?.name ?? `storage/${key}`);
    segmentOfKey.set(key, name);
    tensorSegments.push({ kind: 'tensor', offset: e.dataOffset, length: e.compressedSize, name, dtype, shape });
  }
  tensorSegments.sort((a, b) => a.offset - b.offset);

  const segments: Segment[] = [];
  let pos = 0;
  for (const t of tensorSegments) {
    segments.push({ kind: 'bytes', offset: pos, length: t.offset - pos }, t);
    pos = t.offset + t.length;
  }
  segments.push({ kind: 'bytes', offset: pos, length: size - pos });

  const tensors: TensorView[] = walker.views.map((v) => ({
    name: v.name,
    dtype: v.dtype,
    shape: v.shape,
    segment: segmentOfKey.get(v.storage.key) as string,
    storageOffset: v.storageOffset,
    stride: v.stride,
  }));
  return { segments: normalizeSegments(segments), tensors };
}

/**
 * A storage read whole by tensors of one shape (the usual case, and tied weights) takes that
 * shape, so the segment looks like the tensor; anything else (views, slices, a storage no tensor
 * uses) is a flat run of the storage's elements.
 */
function segmentShape(e: ZipEntry, info: StorageInfo | undefined, views: ViewDraft[]): { dtype: string; shape: number[] } {
  const bytes = e.compressedSize;
  const dtype = views[0]?.dtype ?? (info && !info.untyped ? info.dtype : undefined) ?? 'U8';
  const d = dtypeByName(dtype);
  const elSize = d ? d.bits / 8 : 1;
  if (bytes % elSize !== 0) return { dtype: 'U8', shape: [bytes] };
  const first = views[0];
  const whole =
    first !== undefined &&
    views.every(
      (v) =>
        v.dtype === first.dtype &&
        sameShape(v.shape, first.shape) &&
        v.storageOffset === 0 &&
        isContiguous(v.shape, v.stride) &&
        product(v.shape) * elSize === bytes,
    );
  return { dtype, shape: whole ? first.shape.slice() : [bytes / elSize] };
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

const NOT_PLAIN = Symbol('not plain');
type Plain = unknown;

/** Walks the symbolic tree once, naming tensors by their path and collecting everything else. */
class Walker {
  readonly views: ViewDraft[] = [];
  readonly values: Record<string, unknown> = {};
  readonly storages = new Map<string, StorageInfo>();
  readonly warnings: string[] = [];
  private readonly active = new Set<object>();
  /** Offset of the last node entered: where a budget error points for a plain string or number. */
  private at = 0;

  constructor(
    private readonly root: string,
    private readonly entries: Map<string, ZipEntry>,
    /**
     * Memo references make the tree a DAG that can double at every level: every node reached is
     * charged, with the text it brings (its path, its string), each time it is reached.
     */
    private readonly budget: PickleBudget,
  ) {}

  private enter(v: PickleValue, depth: number, pathBytes = 0): void {
    if (typeof v === 'object' && v !== null) this.at = v.offset;
    this.budget.spend(this.at, 1, pathBytes + textBytes(v));
    if (depth > MAX_DEPTH) throw new FormatError(FORMAT, this.at, `pickle nests deeper than ${MAX_DEPTH}`);
  }

  flatten(v: PickleValue, path: string, depth: number): void {
    this.enter(v, depth, path.length);
    if (typeof v === 'object' && v !== null) {
      if (this.active.has(v)) {
        this.values[path] = '<cycle>';
        return;
      }
      this.active.add(v);
      try {
        this.flattenNode(v, path, depth);
      } finally {
        this.active.delete(v);
      }
      return;
    }
    this.values[path] = scalar(v);
  }

  private flattenNode(v: Exclude<PickleValue, null | boolean | number | bigint | string>, path: string, depth: number): void {
    const entries = this.dictEntries(v);
    if (entries) {
      if (entries.length === 0) this.values[path] = {};
      for (const [k, val] of entries) this.flatten(val, join(path, keyName(k)), depth + 1);
      return;
    }
    if (isNode(v, 'persid')) {
      // A storage pickled on its own (torch.save(t.storage())): a flat view of all of it.
      const s = this.storage(v);
      const dtype = s.dtype ?? 'U8';
      const elSize = (dtypeByName(dtype)?.bits ?? 8) / 8;
      const n = s.untyped ? s.entry.compressedSize / elSize : s.numel;
      this.views.push({ name: tensorName(path), dtype, shape: [n], storageOffset: 0, stride: [1], storage: s });
      return;
    }
    if (isNode(v, 'call')) {
      const name = callName(v);
      if (name && REBUILD_TENSOR.has(name)) return this.tensor(v, name, path);
      if (name && REBUILD_PARAMETER.has(name)) {
        if (v.args.length < 1) throw new FormatError(FORMAT, v.offset, `${name} without arguments`);
        return this.flatten(v.args[0], path, depth + 1);
      }
      if (name === REBUILD_FROM_TYPE) {
        const [func, , args] = v.args;
        if (!isNode(args, 'tuple')) throw new FormatError(FORMAT, v.offset, `${name} arguments are not a tuple`);
        const inner: PCall = { ...v, call: func, args: args.items, state: undefined, listItems: [], dictItems: [] };
        return this.flatten(inner, path, depth + 1);
      }
    }
    const plain = this.plain(v, depth);
    if (plain !== NOT_PLAIN) {
      this.values[path] = plain;
      return;
    }
    if (isNode(v, 'list') || isNode(v, 'tuple') || isNode(v, 'set')) {
      v.items.forEach((item, i) => this.flatten(item, join(path, String(i)), depth + 1));
      return;
    }
    if (isNode(v, 'call')) {
      // An object we do not interpret (allowed by the user): look for tensors in what builds it.
      v.args.forEach((a, i) => this.flatten(a, join(path, `arg${i}`), depth + 1));
      if (v.state !== undefined) this.flatten(v.state, join(path, 'state'), depth + 1);
      v.listItems.forEach((a, i) => this.flatten(a, join(path, String(i)), depth + 1));
      for (const [k, val] of v.dictItems) this.flatten(val, join(path, keyName(k)), depth + 1);
      return;
    }
    this.values[path] = `<${kindOf(v)}>`;
  }

  /** Entries of a dict or a dict-like object (OrderedDict, defaultdict, Namespace), else undefined. */
  private dictEntries(v: PickleValue): Array<[PickleValue, PickleValue]> | undefined {
    if (isNode(v, 'dict')) return v.entries;
    if (!isNode(v, 'call')) return undefined;
    const name = callName(v);
    if (!name || !DICT_LIKE.has(name)) return undefined;
    const out: Array<[PickleValue, PickleValue]> = [];
    if (name === 'argparse.Namespace') {
      if (isNode(v.state, 'dict')) out.push(...v.state.entries);
      if (isNode(v.kwargs, 'dict')) out.push(...v.kwargs.entries);
    } else if (name === 'collections.OrderedDict') {
      // OrderedDict([(k, v), ...]) from old protocols; the state (a module's _metadata) is skipped.
      const init = v.args[0];
      if (isNode(init, 'list') || isNode(init, 'tuple')) {
        for (const pair of init.items) {
          if ((isNode(pair, 'tuple') || isNode(pair, 'list')) && pair.items.length === 2) out.push([pair.items[0], pair.items[1]]);
        }
      }
    }
    out.push(...v.dictItems);
    return out;
  }

  /** A JSON-friendly rendering of a value holding no tensors and no dicts, else NOT_PLAIN. */
  private plain(v: PickleValue, depth: number): Plain | typeof NOT_PLAIN {
    this.enter(v, depth);
    if (typeof v !== 'object' || v === null) return scalar(v);
    switch (v.kind) {
      case 'bytes':
        return { bytes: v.data.length };
      case 'global':
        return { global: v.global };
      case 'dict':
      case 'persid':
        return NOT_PLAIN;
      case 'tuple':
      case 'list':
      case 'set':
        return this.plainList(v.items, depth);
      case 'call':
        return this.plainCall(v, depth);
    }
  }

  private plainList(items: PickleValue[], depth: number): Plain[] | typeof NOT_PLAIN {
    const out: Plain[] = [];
    for (const item of items) {
      const p = this.plainChild(item, depth + 1);
      if (p === NOT_PLAIN) return NOT_PLAIN;
      out.push(p);
    }
    return out;
  }

  private plainChild(v: PickleValue, depth: number): Plain | typeof NOT_PLAIN {
    if (typeof v !== 'object' || v === null) return this.plain(v, depth);
    if (this.active.has(v)) return '<cycle>';
    this.active.add(v);
    try {
      return this.plain(v, depth);
    } finally {
      this.active.delete(v);
    }
  }

  private plainCall(v: PCall, depth: number): Plain | typeof NOT_PLAIN {
    const name = callName(v);
    if (!name) return NOT_PLAIN;
    if (REBUILD_TENSOR.has(name) || REBUILD_PARAMETER.has(name) || name === REBUILD_FROM_TYPE || DICT_LIKE.has(name)) {
      return NOT_PLAIN;
    }
    const a = v.args;
    switch (name) {
      case 'builtins.set':
      case 'builtins.frozenset':
      case 'torch.Size': {
        const items = a[0];
        if (a.length === 0) return this.plainList(v.listItems, depth);
        if (isNode(items, 'list') || isNode(items, 'tuple') || isNode(items, 'set')) return this.plainList(items.items, depth);
        break;
      }
      case 'torch.device':
        if (typeof a[0] === 'string') return a.length > 1 && a[1] !== null ? `${a[0]}:${String(a[1])}` : a[0];
        break;
      case 'builtins.complex':
        return { re: scalar(a[0] ?? 0), im: scalar(a[1] ?? 0) };
      case '_codecs.encode': {
        const n = codecsLength(v);
        if (n !== undefined) return { bytes: n };
        break;
      }
    }
    if (NUMPY_SCALAR.has(name)) {
      const decoded = numpyScalar(v);
      if (decoded !== undefined) return decoded;
    }
    if (NUMPY_RECONSTRUCT.has(name)) {
      const arr = numpyArray(v);
      if (arr !== undefined) return arr;
    }
    const args = this.plainList(a, depth);
    if (args === NOT_PLAIN) return NOT_PLAIN;
    const out: Record<string, unknown> = { call: name, args };
    if (v.state !== undefined) {
      const s = this.plainChild(v.state, depth + 1);
      if (s === NOT_PLAIN) return NOT_PLAIN;
      out.state = s;
    }
    if (v.listItems.length || v.dictItems.length) return NOT_PLAIN;
    return out;
  }

  private storage(p: Extract<PickleValue, { kind: 'persid' }>): StorageInfo {
    const id = p.id;
    const items = isNode(id, 'tuple') ? id.items : undefined;
    if (!items || items.length < 5 || items[0] !== 'storage') {
      throw new FormatError(FORMAT, p.offset, 'persistent id is not a (storage, type, key, location, numel) tuple');
    }
    const [, type, key, , numel] = items;
    if (!isNode(type, 'global') || !type.global.startsWith('torch.')) {
      throw new FormatError(FORMAT, p.offset, 'persistent id names no torch storage class');
    }
    const cls = type.global.slice('torch.'.length);
    if (!(cls in STORAGE_DTYPES)) throw new FormatError(FORMAT, p.offset, `unknown storage class ${type.global}`);
    if (typeof key !== 'string' || key.length === 0 || key.includes('/')) {
      throw new FormatError(FORMAT, p.offset, 'persistent id has a bad storage key');
    }
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
      throw new FormatError(FORMAT, p.offset, `storage ${key} has a bad element count`);
    }
    const dtype = STORAGE_DTYPES[cls];
    const untyped = cls === 'UntypedStorage';
    const known = this.storages.get(key);
    if (known) {
      if (known.numel !== numel || known.dtype !== dtype) {
        throw new FormatError(FORMAT, p.offset, `storage ${key} is described two different ways`);
      }
      return known;
    }
    const entry = this.entries.get(`${this.root}/data/${key}`);
    if (!entry) throw new FormatError(FORMAT, p.offset, `missing storage record ${this.root}/data/${key}`);
    const elSize = untyped ? 1 : dtype ? (dtypeByName(dtype)?.bits ?? 8) / 8 : undefined;
    if (elSize !== undefined && numel * elSize !== entry.uncompressedSize) {
      throw new FormatError(
        FORMAT,
        entry.localHeaderOffset,
        `storage record ${entry.name} has ${entry.uncompressedSize} bytes, the pickle says ${numel} x ${elSize}`,
      );
    }
    if (!dtype) this.warnings.push(`storage ${key} has type ${type.global}, which ckpt cannot name; stored as bytes`);
    const info: StorageInfo = { key, dtype, untyped, numel, entry, offset: p.offset };
    this.storages.set(key, info);
    return info;
  }

  private tensor(v: PCall, name: string, path: string): void {
    const fail = (fault: string): never => {
      throw new FormatError(FORMAT, v.offset, `tensor ${tensorName(path)}: ${fault}`);
    };
    const [storageArg, offsetArg, sizeArg, strideArg] = v.args;
    if (!isNode(storageArg, 'persid')) return fail('storage is not a persistent id');
    const s = this.storage(storageArg);
    let dtype = s.untyped ? undefined : s.dtype;
    if (name === 'torch._utils._rebuild_tensor_v3') {
      const d = v.args[6];
      if (!isNode(d, 'global') || !d.global.startsWith('torch.') || !(d.global.slice(6) in TORCH_DTYPES)) {
        return fail('dtype argument is not a torch dtype');
      }
      dtype = TORCH_DTYPES[d.global.slice(6)];
    }
    if (!dtype) {
      this.warnings.push(`tensor ${tensorName(path)} has a dtype ckpt cannot name; its storage is stored as bytes`);
      return;
    }
    const elSize = (dtypeByName(dtype)?.bits ?? 8) / 8;
    const storageOffset = offsetArg;
    const shape = intTuple(sizeArg) ?? fail('size is not a tuple of non-negative integers');
    const stride = intTuple(strideArg) ?? fail('stride is not a tuple of non-negative integers');
    if (typeof storageOffset !== 'number' || !Number.isSafeInteger(storageOffset) || storageOffset < 0) {
      return fail('storage offset is not a non-negative integer');
    }
    if (shape.length !== stride.length) fail(`size has ${shape.length} dimensions, stride ${stride.length}`);
    const storageElems = Math.floor(s.entry.uncompressedSize / elSize);
    if (!shape.includes(0)) {
      let last = storageOffset;
      for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * stride[i];
      if (!Number.isSafeInteger(last) || last >= storageElems) {
        fail(`reads element ${last} of a storage of ${storageElems} elements`);
      }
    }
    this.views.push({ name: tensorName(path), dtype, shape, storageOffset, stride, storage: s });
  }
}

function callName(v: PCall): string | undefined {
  return isNode(v.call, 'global') ? v.call.global : undefined;
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function tensorName(path: string): string {
  return path === '' ? 'tensor' : path;
}

/** Keys longer than this (a tuple of memoised tuples can double at every level) are cut short. */
const KEY_NAME_MAX = 1024;

function keyName(k: PickleValue): string {
  let left = KEY_NAME_MAX;
  const name = (x: PickleValue): string => {
    if (left <= 0) return '…';
    let out: string;
    if (typeof x === 'string') out = x;
    else if (typeof x === 'number') out = String(x);
    else if (typeof x === 'bigint') out = String(scalar(x));
    else if (typeof x === 'boolean') out = x ? 'True' : 'False';
    else if (x === null) out = 'None';
    else if (isNode(x, 'tuple')) {
      left -= 2;
      const parts: string[] = [];
      for (const item of x.items) {
        if (left <= 0) {
          parts.push('…');
          break;
        }
        parts.push(name(item));
      }
      out = `(${parts.join(', ')})`;
    } else if (isNode(x, 'global')) out = x.global;
    else out = `<${x.kind}>`;
    left -= out.length;
    return out;
  };
  const full = name(k);
  return typeof k === 'string' || full.length <= KEY_NAME_MAX ? full : `${full.slice(0, KEY_NAME_MAX)}…`;
}

/** Bytes of text a value brings to the expanded tree (its rendering), for the pickle budget. */
function textBytes(v: PickleValue): number {
  if (typeof v === 'string') return v.length;
  if (isNode(v, 'global')) return v.global.length;
  return 0;
}

/** Numbers JSON can carry; the rest as Python would print them. */
function scalar(v: PickleValue): unknown {
  if (typeof v === 'number') {
    if (Number.isFinite(v)) return v;
    return Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf';
  }
  if (typeof v === 'bigint') {
    // decimal text of a huge int is quadratic to make; Python refuses it past 4300 digits too
    const bits = v.toString(16).length * 4;
    return bits > MAX_DECIMAL_DIGITS * 3.33 ? `<int of ${bits} bits>` : v.toString();
  }
  if (typeof v === 'object' && v !== null) return `<${v.kind}>`;
  return v;
}

function intTuple(v: PickleValue): number[] | undefined {
  let items: PickleValue[] | undefined;
  if (isNode(v, 'tuple') || isNode(v, 'list')) items = v.items;
  else if (isNode(v, 'call') && callName(v) === 'torch.Size' && isNode(v.args[0], 'tuple')) items = v.args[0].items;
  if (!items) return undefined;
  const out: number[] = [];
  for (const x of items) {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) return undefined;
    out.push(x);
  }
  return out;
}

/** The text of `_codecs.encode(text, 'latin1')`, else undefined. */
function codecsText(v: PickleValue): string | undefined {
  if (!isNode(v, 'call') || callName(v) !== '_codecs.encode') return undefined;
  const [text, enc] = v.args;
  return typeof text === 'string' && (enc === 'latin1' || enc === 'latin-1') ? text : undefined;
}

/** How many bytes a bytes value or `_codecs.encode(text, 'latin1')` holds, without making them. */
function codecsLength(v: PickleValue): number | undefined {
  return isNode(v, 'bytes') ? v.data.length : codecsText(v)?.length;
}

/**
 * `_codecs.encode(text, 'latin1')`: how protocol 2 pickles carry NumPy's raw bytes. Only up to
 * `max` bytes are made (a memoised text reached many times must not be copied each time).
 */
function codecsBytes(v: PickleValue, max: number): Uint8Array | undefined {
  if (isNode(v, 'bytes')) return v.data;
  const text = codecsText(v);
  if (text === undefined || text.length > max) return undefined;
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0xff) return undefined;
    out[i] = c;
  }
  return out;
}

interface NumpyDType {
  kind: string;
  size: number;
  little: boolean;
  descr: string;
}

/** A pickled `numpy.dtype(descr, False, True)` with its BUILD state (version, byte order, ...). */
function numpyDType(v: PickleValue): NumpyDType | undefined {
  if (!isNode(v, 'call') || callName(v) !== 'numpy.dtype' || typeof v.args[0] !== 'string') return undefined;
  const descr = v.args[0];
  const m = /^([<>|=]?)([biufc])(\d+)$/.exec(descr);
  if (!m) return undefined;
  const order = isNode(v.state, 'tuple') && typeof v.state.items[1] === 'string' ? v.state.items[1] : m[1] || '=';
  return { kind: m[2], size: Number(m[3]), little: order !== '>', descr: m[2] + m[3] };
}

function decodeNumbers(dt: NumpyDType, data: Uint8Array, count: number): unknown[] | undefined {
  if (data.length < count * dt.size) return undefined;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const le = dt.little;
  const out: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const o = i * dt.size;
    let x: number | bigint | boolean;
    switch (`${dt.kind}${dt.size}`) {
      case 'b1':
        x = data[o] !== 0;
        break;
      case 'i1':
        x = view.getInt8(o);
        break;
      case 'u1':
        x = data[o];
        break;
      case 'i2':
        x = view.getInt16(o, le);
        break;
      case 'u2':
        x = view.getUint16(o, le);
        break;
      case 'i4':
        x = view.getInt32(o, le);
        break;
      case 'u4':
        x = view.getUint32(o, le);
        break;
      case 'i8':
        x = view.getBigInt64(o, le);
        break;
      case 'u8':
        x = view.getBigUint64(o, le);
        break;
      case 'f2':
        x = half(view.getUint16(o, le));
        break;
      case 'f4':
        x = view.getFloat32(o, le);
        break;
      case 'f8':
        x = view.getFloat64(o, le);
        break;
      default:
        return undefined;
    }
    if (typeof x === 'bigint') x = x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
    out.push(typeof x === 'boolean' ? x : scalar(x));
  }
  return out;
}

function half(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** `numpy.core.multiarray.scalar(dtype, bytes)`, e.g. np.float32(0.5): decoded to its number. */
function numpyScalar(v: PCall): unknown {
  const dt = numpyDType(v.args[0]);
  const data = dt && codecsBytes(v.args[1], dt.size);
  if (!dt || !data || data.length !== dt.size) return undefined;
  return decodeNumbers(dt, data, 1)?.[0];
}

/** Small NumPy arrays keep their values; larger ones their dtype and shape. */
const NUMPY_VALUES_MAX = 64;

function numpyArray(v: PCall): unknown {
  if (!isNode(v.state, 'tuple')) return undefined;
  const [, shapeArg, dtypeArg, , dataArg] = v.state.items;
  const shape = intTuple(shapeArg ?? null);
  const dt = numpyDType(dtypeArg ?? null);
  if (!shape || !dt) return undefined;
  const count = product(shape);
  const out: Record<string, unknown> = { ndarray: { dtype: dt.descr, shape } };
  const data = count <= NUMPY_VALUES_MAX ? codecsBytes(dataArg ?? null, NUMPY_VALUES_MAX * 16) : undefined;
  if (data) {
    const values = decodeNumbers(dt, data, count);
    if (values) (out.ndarray as Record<string, unknown>).values = values;
  }
  return out;
}
