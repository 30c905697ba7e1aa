/**
 * A pickle interpreter that evaluates nothing. It walks the opcodes and builds a symbolic tree:
 * a global is only its dotted name, a call (REDUCE, NEWOBJ, INST, OBJ) is a node holding the
 * callee and its arguments, a persistent id is kept as a value. Deciding what a tree means (a
 * tensor, a dict, something to refuse) is left to the format that reads it; nothing here can
 * import a module or call a function, which is what makes reading untrusted checkpoints safe.
 *
 * Every fault is a FormatError at an offset in the FILE (`baseOffset` + position in the pickle).
 * Work is bounded twice. By the input: each opcode consumes at least one byte, so operations, stack
 * entries and memo entries are at most the pickle's length, and lengths of strings and bytes are
 * checked against what is left before anything is read. And by a PickleBudget shared with whoever
 * expands the tree (a memo reference makes it a DAG that doubles at every level): values made or
 * visited, bytes of text produced, and seconds, each failing with a FormatError at the offset
 * where it ran out. Integers written as decimal text are refused past Python's own limit.
 */
import { FormatError } from '../core/errors.js';

export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PBytes
  | PTuple
  | PList
  | PDict
  | PSet
  | PGlobal
  | PCall
  | PPersistentId;

/** `offset` is where the node was made, in the file: errors found later can point at it. */
export interface PBytes {
  kind: 'bytes';
  data: Uint8Array;
  /** bytearray rather than bytes. */
  mutable: boolean;
  offset: number;
}
export interface PTuple {
  kind: 'tuple';
  items: PickleValue[];
  offset: number;
}
export interface PList {
  kind: 'list';
  items: PickleValue[];
  offset: number;
}
export interface PDict {
  kind: 'dict';
  entries: Array<[PickleValue, PickleValue]>;
  offset: number;
}
export interface PSet {
  kind: 'set';
  items: PickleValue[];
  frozen: boolean;
  offset: number;
}
export interface PGlobal {
  kind: 'global';
  /** 'module.name', e.g. 'torch._utils._rebuild_tensor_v2'. */
  global: string;
  offset: number;
}
/**
 * A call the pickle asks for, never made. Items appended or set on the result (an OrderedDict
 * filled by SETITEMS, a list subclass by APPENDS) and BUILD's state are kept on the node.
 */
export interface PCall {
  kind: 'call';
  call: PickleValue;
  args: PickleValue[];
  kwargs?: PickleValue;
  /** NEWOBJ / NEWOBJ_EX / OBJ: `cls.__new__(cls, *args)` rather than `callee(*args)`. */
  newobj: boolean;
  state?: PickleValue;
  listItems: PickleValue[];
  dictItems: Array<[PickleValue, PickleValue]>;
  offset: number;
}
export interface PPersistentId {
  kind: 'persid';
  id: PickleValue;
  offset: number;
}

export interface PickleGlobalRef {
  name: string;
  offset: number;
}

export interface PickleResult {
  value: PickleValue;
  /** Every global the pickle names, in order of appearance, with the offset of the opcode. */
  globals: PickleGlobalRef[];
}

/** Deeper MARK nesting than any real checkpoint uses; a bound so nesting bombs fail early. */
export const MAX_MARK_DEPTH = 1024;

/**
 * Decimal INT/LONG text past this many digits is refused: parsing it is quadratic, and Python
 * itself refuses to convert longer text (sys.int_info.default_max_str_digits, 4300).
 */
export const MAX_DECIMAL_DIGITS = 4300;
/** Binary LONG1/LONG4 past this many bytes is refused; torch writes ints of a few bytes. */
export const MAX_LONG_BYTES = 64 * 1024;

export interface PickleLimits {
  /** Values made by the machine plus values visited when the tree is expanded. */
  values: number;
  /** Bytes of text (strings, names, paths) produced when the tree is expanded. */
  bytes: number;
  /** Seconds of CPU time (the process's, user and system) for running and expanding one pickle. */
  seconds: number;
}

/**
 * Far above what a real checkpoint's pickle needs (a state dict of 10,000 tensors with its
 * optimizer state is well under 1,000,000 values and a few MB of names) and far below what
 * exhausts a machine: about 200 bytes of memory per value.
 */
export const DEFAULT_PICKLE_LIMITS: PickleLimits = { values: 2_000_000, bytes: 32 * 1024 * 1024, seconds: 5 };

/**
 * The work one pickle may cost, shared by the machine and the format that expands its tree: a
 * memoised subtree reached twice is counted twice, so a DAG cannot expand past the budget.
 */
/** CPU time this process has used, user and system, in milliseconds. */
function cpuMillis(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

export class PickleBudget {
  private values = 0;
  private bytes = 0;
  private readonly deadline: number;
  private tick = 0;

  constructor(
    private readonly format: string,
    readonly limits: PickleLimits = DEFAULT_PICKLE_LIMITS,
    // CPU time, not wall time: a loaded machine must not turn a pickle it can read into a refusal
    private readonly now: () => number = cpuMillis,
  ) {
    this.deadline = now() + limits.seconds * 1000;
  }

  /** Counts `n` values (and `textBytes` of text) made or visited at `offset` in the file. */
  spend(offset: number, n = 1, textBytes = 0): void {
    this.values += n;
    this.bytes += textBytes;
    if (this.values > this.limits.values) {
      this.fail(offset, `pickle expands to more than ${this.limits.values} values (memoised values count each time they are reached)`);
    }
    if (this.bytes > this.limits.bytes) {
      this.fail(offset, `pickle expands to more than ${this.limits.bytes} bytes of text (memoised values count each time they are reached)`);
    }
    this.tick += n;
    if (this.tick >= 4096) {
      this.tick = 0;
      if (this.now() > this.deadline) this.fail(offset, `pickle takes more than ${this.limits.seconds} s of CPU to read`);
    }
  }

  private fail(offset: number, fault: string): never {
    throw new FormatError(this.format, offset, fault);
  }
}

const HIGHEST_PROTOCOL = 5;

const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

export function isNode<K extends Exclude<PickleValue, null | boolean | number | bigint | string>['kind']>(
  v: PickleValue | undefined,
  kind: K,
): v is Extract<PickleValue, { kind: K }> {
  return typeof v === 'object' && v !== null && v.kind === kind;
}

/**
 * Runs a pickle symbolically. `format` names the format in errors; `baseOffset` is where the pickle
 * starts in the file; `budget` is charged for every value made and every copy of items.
 */
export function runPickle(
  bytes: Uint8Array,
  baseOffset: number,
  format: string,
  budget: PickleBudget = new PickleBudget(format),
): PickleResult {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  let pos = 0;
  let opAt = 0;
  const stack: PickleValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, PickleValue>();
  const globals: PickleGlobalRef[] = [];

  const fail = (fault: string, at = opAt): never => {
    throw new FormatError(format, baseOffset + at, fault);
  };
  const need = (n: number, what: string): void => {
    if (n > len - pos) fail(`${what}: needs ${n} bytes, ${len - pos} left in the pickle`, len > 0 ? Math.min(pos, len - 1) : 0);
  };
  const u8 = () => {
    need(1, 'truncated pickle');
    return bytes[pos++];
  };
  const u16 = () => {
    need(2, 'truncated pickle');
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = () => {
    need(4, 'truncated pickle');
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = () => {
    need(4, 'truncated pickle');
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8, 'truncated pickle');
    const v = view.getBigUint64(pos, true);
    pos += 8;
    // Anything past the pickle's length is rejected by the caller; clamping keeps it a number.
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  };
  const take = (n: number, what: string): Uint8Array => {
    if (n < 0) fail(`${what} has negative length ${n}`);
    if (n > len - pos) fail(`${what} length ${n} runs past the end of the pickle (${len - pos} bytes left)`);
    const out = bytes.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const line = (what: string): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0) fail(`${what}: unterminated line`);
    const s = latin1.decode(bytes.subarray(pos, nl));
    pos = nl + 1;
    return s;
  };

  /** A protocol 0 integer's text, refused before it is parsed when it is too long. */
  const decimalLine = (what: string): string => {
    const nl = bytes.indexOf(0x0a, pos);
    if (nl >= 0 && nl - pos > MAX_DECIMAL_DIGITS + 2) {
      fail(`${what} has ${nl - pos} characters of decimal text; ckpt reads at most ${MAX_DECIMAL_DIGITS} digits (as Python does)`);
    }
    return line(what).trim();
  };

  const floor = () => (marks.length ? marks[marks.length - 1] : 0);
  const pop = (): PickleValue => {
    if (stack.length <= floor()) fail('stack underflow');
    return stack.pop() as PickleValue;
  };
  const top = (): PickleValue => {
    if (stack.length <= floor()) fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): PickleValue[] => {
    const m = marks.pop();
    if (m === undefined) fail('no MARK to pop to');
    return stack.splice(m as number);
  };
  const here = () => baseOffset + opAt;
  const globalNode = (module: string, name: string): PGlobal => {
    const full = python3Name(module, name);
    globals.push({ name: full, offset: here() });
    return { kind: 'global', global: full, offset: here() };
  };
  const call = (callee: PickleValue, args: PickleValue, newobj: boolean, kwargs?: PickleValue): PCall => {
    if (!isNode(args, 'tuple') && !isNode(args, 'list')) fail(`call arguments are a ${kindOf(args)}, not a tuple`);
    const items = (args as PTuple | PList).items;
    // a tuple is never changed after it is made, so the call may share its items; a list is copied
    if (isNode(args, 'list')) budget.spend(here(), items.length);
    const node: PCall = {
      kind: 'call',
      call: callee,
      args: isNode(args, 'tuple') ? items : items.slice(),
      newobj,
      listItems: [],
      dictItems: [],
      offset: here(),
    };
    if (kwargs !== undefined) node.kwargs = kwargs;
    return node;
  };
  const appendTo = (target: PickleValue, items: PickleValue[]): void => {
    if (isNode(target, 'list')) target.items.push(...items);
    else if (isNode(target, 'call')) target.listItems.push(...items);
    else fail(`APPEND to a ${kindOf(target)}`);
  };
  const setItems = (target: PickleValue, kv: PickleValue[]): void => {
    if (kv.length % 2 !== 0) fail('SETITEMS with an odd number of items');
    const pairs: Array<[PickleValue, PickleValue]> = [];
    for (let i = 0; i < kv.length; i += 2) pairs.push([kv[i], kv[i + 1]]);
    if (isNode(target, 'dict')) target.entries.push(...pairs);
    else if (isNode(target, 'call')) target.dictItems.push(...pairs);
    else fail(`SETITEM on a ${kindOf(target)}`);
  };
  const memoGet = (i: number): void => {
    if (!memo.has(i)) fail(`memo get of missing key ${i}`);
    stack.push(memo.get(i) as PickleValue);
  };
  const str = (b: Uint8Array): string => utf8.decode(b);
  const bytesNode = (data: Uint8Array, mutable: boolean): PBytes => ({ kind: 'bytes', data, mutable, offset: here() });

  while (true) {
    if (pos >= len) fail('pickle ends without STOP', Math.max(0, len - 1));
    opAt = pos;
    budget.spend(baseOffset + opAt);
    const op = bytes[pos++];
    switch (op) {
      case 0x80: {
        // PROTO
        const p = u8();
        if (p > HIGHEST_PROTOCOL) fail(`unsupported pickle protocol ${p}`);
        break;
      }
      case 0x95: {
        // FRAME: only groups opcodes for buffered reading; its length must still be honest.
        const n = u64();
        if (n > len - pos) fail(`frame length ${n} runs past the end of the pickle (${len - pos} bytes left)`);
        break;
      }
      case 0x2e: {
        // STOP
        const value = pop();
        return { value, globals };
      }
      case 0x28: // MARK
        if (marks.length >= MAX_MARK_DEPTH) fail(`MARK nesting deeper than ${MAX_MARK_DEPTH}`);
        marks.push(stack.length);
        break;
      case 0x30: // POP: with nothing above the mark, Python pops the mark itself
        if (stack.length > floor()) stack.pop();
        else popMark();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;

      // Constants and numbers.
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(littleSigned(take(u8(), 'LONG1')));
        break;
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n > MAX_LONG_BYTES) fail(`LONG4 of ${n} bytes; ckpt reads integers of at most ${MAX_LONG_BYTES} bytes`);
        stack.push(littleSigned(take(n, 'LONG4')));
        break;
      }
      case 0x49: {
        // INT (protocol 0); "01"/"00" are how protocol 0 spells True/False.
        const s = decimalLine('INT');
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else stack.push(parseIntText(s) ?? fail(`INT is not an integer: ${JSON.stringify(s.slice(0, 40))}`));
        break;
      }
      case 0x4c: {
        // LONG (protocol 0)
        const s = decimalLine('LONG').replace(/L$/, '');
        stack.push(parseIntText(s) ?? fail(`LONG is not an integer: ${JSON.stringify(s.slice(0, 40))}`));
        break;
      }
      case 0x47: {
        // BINFLOAT: big-endian, unlike everything else in pickle.
        need(8, 'truncated pickle');
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x46: {
        // FLOAT (protocol 0)
        const s = line('FLOAT').trim();
        const f = parseFloatText(s);
        stack.push(f ?? fail(`FLOAT is not a number: ${JSON.stringify(s.slice(0, 40))}`));
        break;
      }

      // Strings and bytes.
      case 0x58: // BINUNICODE
        stack.push(str(take(u32(), 'BINUNICODE')));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(str(take(u8(), 'SHORT_BINUNICODE')));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(str(take(u64(), 'BINUNICODE8')));
        break;
      case 0x56: // UNICODE (protocol 0, raw-unicode-escape)
        stack.push(rawUnicodeEscape(line('UNICODE')));
        break;
      case 0x54: // BINSTRING: Python 2 str, decoded as torch.load does (utf-8)
        stack.push(str(take(i32(), 'BINSTRING')));
        break;
      case 0x55: // SHORT_BINSTRING
        stack.push(str(take(u8(), 'SHORT_BINSTRING')));
        break;
      case 0x53: {
        // STRING (protocol 0): a quoted Python 2 repr
        const s = line('STRING');
        const q = s[0];
        if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) fail('STRING is not quoted');
        stack.push(str(escapeDecode(s.slice(1, -1)) ?? fail('STRING has a bad escape')));
        break;
      }
      case 0x42: // BINBYTES
        stack.push(bytesNode(take(u32(), 'BINBYTES'), false));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(bytesNode(take(u8(), 'SHORT_BINBYTES'), false));
        break;
      case 0x8e: // BINBYTES8
        stack.push(bytesNode(take(u64(), 'BINBYTES8'), false));
        break;
      case 0x96: // BYTEARRAY8
        stack.push(bytesNode(take(u64(), 'BYTEARRAY8'), true));
        break;
      case 0x97: // NEXT_BUFFER
        fail('out-of-band buffers (NEXT_BUFFER) are not supported');
        break;
      case 0x98: // READONLY_BUFFER: a no-op on an in-band value
        top();
        break;

      // Containers.
      case 0x29: // EMPTY_TUPLE
        stack.push({ kind: 'tuple', items: [], offset: here() });
        break;
      case 0x74: // TUPLE
        stack.push({ kind: 'tuple', items: popMark(), offset: here() });
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const n = op - 0x84;
        const items: PickleValue[] = [];
        for (let i = 0; i < n; i++) items.unshift(pop());
        stack.push({ kind: 'tuple', items, offset: here() });
        break;
      }
      case 0x5d: // EMPTY_LIST
        stack.push({ kind: 'list', items: [], offset: here() });
        break;
      case 0x6c: // LIST
        stack.push({ kind: 'list', items: popMark(), offset: here() });
        break;
      case 0x7d: // EMPTY_DICT
        stack.push({ kind: 'dict', entries: [], offset: here() });
        break;
      case 0x64: {
        // DICT
        const d: PDict = { kind: 'dict', entries: [], offset: here() };
        setItems(d, popMark());
        stack.push(d);
        break;
      }
      case 0x8f: // EMPTY_SET
        stack.push({ kind: 'set', items: [], frozen: false, offset: here() });
        break;
      case 0x91: // FROZENSET
        stack.push({ kind: 'set', items: popMark(), frozen: true, offset: here() });
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const t = top();
        if (isNode(t, 'set') && !t.frozen) t.items.push(...items);
        else if (isNode(t, 'call')) t.listItems.push(...items);
        else fail(`ADDITEMS to a ${kindOf(t)}`);
        break;
      }
      case 0x61: {
        // APPEND
        const v = pop();
        appendTo(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendTo(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const kv = popMark();
        setItems(top(), kv);
        break;
      }

      // Memo.
      case 0x68: // BINGET
        memoGet(u8());
        break;
      case 0x6a: // LONG_BINGET
        memoGet(u32());
        break;
      case 0x67: {
        // GET
        const s = line('GET').trim();
        if (!/^\d+$/.test(s)) fail(`GET key is not a number: ${JSON.stringify(s.slice(0, 40))}`);
        memoGet(Number(s));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: {
        // PUT
        const s = line('PUT').trim();
        if (!/^\d+$/.test(s)) fail(`PUT key is not a number: ${JSON.stringify(s.slice(0, 40))}`);
        memo.set(Number(s), top());
        break;
      }
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;

      // Globals, calls, persistent ids: recorded, never resolved.
      case 0x63: {
        // GLOBAL
        const module = line('GLOBAL module');
        const name = line('GLOBAL name');
        stack.push(globalNode(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(globalNode(module as string, name as string));
        break;
      }
      case 0x69: {
        // INST: class named inline, arguments since the mark
        const module = line('INST module');
        const name = line('INST name');
        const args = popMark();
        const cls = globalNode(module, name);
        stack.push(call(cls, { kind: 'tuple', items: args, offset: here() }, true));
        break;
      }
      case 0x6f: {
        // OBJ: class and arguments since the mark
        const items = popMark();
        if (items.length === 0) fail('OBJ without a class');
        stack.push(call(items[0], { kind: 'tuple', items: items.slice(1), offset: here() }, true));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callee = pop();
        stack.push(call(callee, args, false));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, true));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, true, kwargs));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const t = top();
        if (!isNode(t, 'call')) fail(`BUILD on a ${kindOf(t)}`);
        (t as PCall).state = state;
        break;
      }
      case 0x50: // PERSID
        stack.push({ kind: 'persid', id: line('PERSID'), offset: here() });
        break;
      case 0x51: // BINPERSID
        stack.push({ kind: 'persid', id: pop(), offset: here() });
        break;
      case 0x82: // EXT1
      case 0x83: // EXT2
      case 0x84: // EXT4
        // Extension codes name globals through copyreg's registry, which we cannot see.
        fail('extension registry opcodes (EXT1/2/4) are refused');
        break;
      default:
        fail(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

/**
 * Protocol 0-2 pickles written by Python 3 spell some modules the Python 2 way (builtins as
 * __builtin__, subprocess as commands), and Python 3 maps them back when loading (_compat_pickle).
 * Judge and report the name that would actually be imported. Py2 modules not listed here keep
 * their name, which no allowlist holds, so they are refused either way.
 */
const PY2_NAMES: Record<string, string> = {
  '__builtin__.xrange': 'builtins.range',
  '__builtin__.reduce': 'functools.reduce',
  '__builtin__.intern': 'sys.intern',
  '__builtin__.unichr': 'builtins.chr',
  '__builtin__.unicode': 'builtins.str',
  '__builtin__.long': 'builtins.int',
  '__builtin__.basestring': 'builtins.str',
  'exceptions.StandardError': 'builtins.Exception',
};
const PY2_MODULES: Record<string, string> = {
  __builtin__: 'builtins',
  exceptions: 'builtins',
  copy_reg: 'copyreg',
  commands: 'subprocess',
  cPickle: 'pickle',
  thread: '_thread',
  Queue: 'queue',
  UserDict: 'collections',
  UserList: 'collections',
  UserString: 'collections',
  StringIO: 'io',
  cStringIO: 'io',
  urllib2: 'urllib.request',
  httplib: 'http.client',
};

function python3Name(module: string, name: string): string {
  const full = `${module}.${name}`;
  return PY2_NAMES[full] ?? `${Object.hasOwn(PY2_MODULES, module) ? PY2_MODULES[module] : module}.${name}`;
}

export function kindOf(v: PickleValue): string {
  if (v === null) return 'None';
  if (typeof v === 'object') return v.kind;
  return typeof v;
}

/** Keeps integers as numbers when exact, else as bigint. */
function intValue(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function littleSigned(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let hex = '';
  for (let i = b.length - 1; i >= 0; i--) hex += b[i].toString(16).padStart(2, '0');
  let v = BigInt('0x' + hex);
  if (b[b.length - 1] & 0x80) v -= 1n << BigInt(b.length * 8);
  return intValue(v);
}

function parseIntText(s: string): number | bigint | undefined {
  if (!/^[+-]?\d+$/.test(s)) return undefined;
  return intValue(BigInt(s));
}

function parseFloatText(s: string): number | undefined {
  const special: Record<string, number> = { nan: NaN, inf: Infinity, '-inf': -Infinity, '+inf': Infinity };
  if (s.toLowerCase() in special) return special[s.toLowerCase()];
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) return undefined;
  return Number(s);
}

/** Python's string-escape decoding of a protocol 0 STRING body, to bytes. */
function escapeDecode(s: string): Uint8Array | undefined {
  const out: number[] = [];
  const simple: Record<string, number> = { n: 10, t: 9, r: 13, '\\': 92, "'": 39, '"': 34, a: 7, b: 8, f: 12, v: 11, '\n': -1 };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (s[i] !== '\\') {
      out.push(c & 0xff);
      continue;
    }
    const e = s[++i];
    if (e === undefined) return undefined;
    if (e in simple) {
      if (simple[e] >= 0) out.push(simple[e]);
    } else if (e === 'x') {
      const h = s.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(h)) return undefined;
      out.push(parseInt(h, 16));
      i += 2;
    } else if (/[0-7]/.test(e)) {
      let o = e;
      while (o.length < 3 && /[0-7]/.test(s[i + 1] ?? '')) o += s[++i];
      out.push(parseInt(o, 8) & 0xff);
    } else {
      out.push(92, e.charCodeAt(0) & 0xff);
    }
  }
  return Uint8Array.from(out);
}

/** raw-unicode-escape: latin-1 text where only \uXXXX and \UXXXXXXXX are escapes. */
function rawUnicodeEscape(s: string): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u: string | undefined, U: string | undefined) => {
    const cp = parseInt((u ?? U) as string, 16);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : _m;
  });
}
