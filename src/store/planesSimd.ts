/**
 * Byte-plane joins and splits in WebAssembly SIMD: what every read and every compressed write of
 * a float chunk runs through.
 * JavaScript moves about 0.5 GB/s here (a 4x4 byte transpose per four elements, in shifts);
 * i8x16.shuffle rebuilds 16 elements from 16 bytes of each plane in eight instructions, several
 * times faster. The module is assembled here from its instructions (no binary blob to review) and
 * compiled on first use; where the runtime lacks WebAssembly SIMD, `simdJoin` returns undefined
 * and the callers take the JavaScript path (bytePlanes.ts), which gives the same bytes.
 *
 * Six functions, each over `groups` blocks of 16 elements, planes `n` bytes apart:
 *   join4(src, dst, n, groups)          4-byte elements
 *   join4z(src, base, dst, n, groups)   and then undo the zigzag delta against base (i32 lanes)
 *   join2(src, dst, n, groups)          2-byte elements
 *   join2z(src, base, dst, n, groups)   and undo the zigzag delta (i16 lanes)
 *   split4(src, dst, n, groups)         the other way: elements at src, planes from dst on
 *   split2(src, dst, n, groups)
 * Elements after the last whole group and the tail bytes are left to the caller.
 */

type Join = (src: number, dst: number, n: number, groups: number) => void;
type JoinZ = (src: number, base: number, dst: number, n: number, groups: number) => void;

interface Simd {
  memory: WebAssembly.Memory;
  join4: Join;
  join4z: JoinZ;
  join2: Join;
  join2z: JoinZ;
  split4: Join;
  split2: Join;
}

const uleb = (v: number): number[] => {
  const out: number[] = [];
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return out;
};
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => vec([...s].map((c) => [c.charCodeAt(0)]));

// instructions
const I32 = 0x7f;
const V128 = 0x7b;
const get = (i: number) => [0x20, i];
const set = (i: number) => [0x21, i];
const tee = (i: number) => [0x22, i];
const i32const = (v: number) => [0x41, ...sleb(v)];
const ADD = [0x6a];
const SUB = [0x6b];
const GE_U = [0x4f];
const simd = (op: number, ...imm: number[]) => [0xfd, ...uleb(op), ...imm];
const load = (offset: number) => simd(0x00, 4, ...uleb(offset));
const store = (offset: number) => simd(0x0b, 4, ...uleb(offset));
const shuffle = (lanes: number[]) => simd(0x0d, ...lanes);
const XOR = simd(0x51);

function sleb(v: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

// a0 b0 a1 b1 ... a7 b7, then the high halves
const LO8 = [0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23];
const HI8 = [8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31];
// pairs of 16-bit lanes interleaved
const LO16 = [0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23];
const HI16 = [8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31];

/**
 * The loop shared by the four functions: `body` emits the work for one group with the source
 * pointer in local `src`, base in `base`, destination in `dst`; after it the pointers advance by
 * `srcStep` source bytes and `step` bytes of destination and base.
 */
function loop(params: { src: number; base?: number; dst: number; n: number; groups: number }, step: number, body: number[], srcStep = 16): number[] {
  const { src, base, dst, groups } = params;
  return [
    0x02, 0x40, // block
    0x03, 0x40, // loop
    ...get(groups), ...i32const(0), 0x46, 0x0d, 1, // br_if 1 when groups == 0
    ...body,
    ...get(src), ...i32const(srcStep), ...ADD, ...set(src),
    ...get(dst), ...i32const(step), ...ADD, ...set(dst),
    ...(base === undefined ? [] : [...get(base), ...i32const(step), ...ADD, ...set(base)]),
    ...get(groups), ...i32const(1), ...SUB, ...set(groups),
    0x0c, 0, // br 0
    0x0b, 0x0b, // end loop, end block
  ];
}

/** Undo zigzag in place on the value on the stack, lanes of `bits`: (z >>> 1) ^ -(z & 1), plus base. */
function unzigzag(bits: 16 | 32, zLocal: number, baseAddr: number[]): number[] {
  const [shl, shrS, shrU, add] = bits === 32 ? [0xab, 0xac, 0xad, 0xae] : [0x8b, 0x8c, 0x8d, 0x8e];
  return [
    ...set(zLocal),
    ...get(zLocal), ...i32const(1), ...simd(shrU),
    ...get(zLocal), ...i32const(bits - 1), ...simd(shl), ...i32const(bits - 1), ...simd(shrS),
    ...XOR,
    ...baseAddr,
    ...simd(add),
  ];
}

function join4Body(zigzag: boolean): { params: number; locals: number[]; code: number[] } {
  // params: src, [base], dst, n, groups; locals: n2, n3, a..d then two pairs, z
  const P = zigzag ? { src: 0, base: 1, dst: 2, n: 3, groups: 4 } : { src: 0, dst: 1, n: 2, groups: 3 };
  const first = zigzag ? 5 : 4;
  const n2 = first;
  const n3 = first + 1;
  const [a, b, c, d, ab0, ab1, cd0, cd1, z] = Array.from({ length: 9 }, (_, i) => first + 2 + i);
  const plane = (off: number[]) => [...get(P.src), ...off, ...load(0)];
  const out = (x: number, y: number, lanes: number[], k: number) =>
    zigzag
      ? [...get(P.dst), ...get(x), ...get(y), ...shuffle(lanes), ...unzigzag(32, z, [...get(P.base!), ...load(16 * k)]), ...store(16 * k)]
      : [...get(P.dst), ...get(x), ...get(y), ...shuffle(lanes), ...store(16 * k)];
  const body = [
    ...plane([]), ...set(a),
    ...plane([...get(P.n), ...ADD]), ...set(b),
    ...plane([...get(n2), ...ADD]), ...set(c),
    ...plane([...get(n3), ...ADD]), ...set(d),
    ...get(a), ...get(b), ...shuffle(LO8), ...set(ab0),
    ...get(a), ...get(b), ...shuffle(HI8), ...set(ab1),
    ...get(c), ...get(d), ...shuffle(LO8), ...set(cd0),
    ...get(c), ...get(d), ...shuffle(HI8), ...set(cd1),
    ...out(ab0, cd0, LO16, 0),
    ...out(ab0, cd0, HI16, 1),
    ...out(ab1, cd1, LO16, 2),
    ...out(ab1, cd1, HI16, 3),
  ];
  const code = [
    ...get(P.n), ...get(P.n), ...ADD, ...tee(n2), ...get(P.n), ...ADD, ...set(n3),
    ...loop(P, 64, body),
  ];
  return { params: zigzag ? 5 : 4, locals: [I32, I32, ...Array(9).fill(V128)], code };
}

function join2Body(zigzag: boolean): { params: number; locals: number[]; code: number[] } {
  const P = zigzag ? { src: 0, base: 1, dst: 2, n: 3, groups: 4 } : { src: 0, dst: 1, n: 2, groups: 3 };
  const first = zigzag ? 5 : 4;
  const [a, b, z] = [first, first + 1, first + 2];
  const out = (lanes: number[], k: number) =>
    zigzag
      ? [...get(P.dst), ...get(a), ...get(b), ...shuffle(lanes), ...unzigzag(16, z, [...get(P.base!), ...load(16 * k)]), ...store(16 * k)]
      : [...get(P.dst), ...get(a), ...get(b), ...shuffle(lanes), ...store(16 * k)];
  const body = [
    ...get(P.src), ...load(0), ...set(a),
    ...get(P.src), ...get(P.n), ...ADD, ...load(0), ...set(b),
    ...out(LO8, 0),
    ...out(HI8, 1),
  ];
  return { params: zigzag ? 5 : 4, locals: [V128, V128, V128], code: loop(P, 32, body) };
}

// within one vector of four 4-byte elements: byte k of each element together, plane by plane
const BY_PLANE4 = [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15];
// 32-bit lanes a0 b0 a1 b1 and a2 b2 a3 b3; 64-bit lanes a0 b0 and a1 b1
const LANES32_LO = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const LANES32_HI = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31];
const LANES64_LO = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const LANES64_HI = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];
const EVEN8 = Array.from({ length: 16 }, (_, i) => 2 * i);
const ODD8 = Array.from({ length: 16 }, (_, i) => 2 * i + 1);

/**
 * 16 elements of 4 bytes (64 source bytes, four vectors) to 16 bytes of each plane: bytes grouped
 * by plane within each vector, then a 4x4 transpose of 32-bit lanes across the four vectors.
 */
function split4Body(): { params: number; locals: number[]; code: number[] } {
  const P = { src: 0, dst: 1, n: 2, groups: 3 };
  const [n2, n3] = [4, 5];
  const [t0, t1, t2, t3, u0, u1, u2, u3] = Array.from({ length: 8 }, (_, i) => 6 + i);
  const grouped = (k: number, t: number) => [...get(P.src), ...load(16 * k), ...get(P.src), ...load(16 * k), ...shuffle(BY_PLANE4), ...set(t)];
  const pair = (a: number, b: number, lanes: number[], u: number) => [...get(a), ...get(b), ...shuffle(lanes), ...set(u)];
  const plane = (off: number[], a: number, b: number, lanes: number[]) => [...get(P.dst), ...off, ...get(a), ...get(b), ...shuffle(lanes), ...store(0)];
  const body = [
    ...grouped(0, t0), ...grouped(1, t1), ...grouped(2, t2), ...grouped(3, t3),
    ...pair(t0, t1, LANES32_LO, u0), ...pair(t0, t1, LANES32_HI, u1),
    ...pair(t2, t3, LANES32_LO, u2), ...pair(t2, t3, LANES32_HI, u3),
    ...plane([], u0, u2, LANES64_LO),
    ...plane([...get(P.n), ...ADD], u0, u2, LANES64_HI),
    ...plane([...get(n2), ...ADD], u1, u3, LANES64_LO),
    ...plane([...get(n3), ...ADD], u1, u3, LANES64_HI),
  ];
  const code = [
    ...get(P.n), ...get(P.n), ...ADD, ...tee(n2), ...get(P.n), ...ADD, ...set(n3),
    ...loop(P, 16, body, 64),
  ];
  return { params: 4, locals: [I32, I32, ...Array(8).fill(V128)], code };
}

/** 16 elements of 2 bytes (two vectors) to 16 bytes of each of the two planes. */
function split2Body(): { params: number; locals: number[]; code: number[] } {
  const P = { src: 0, dst: 1, n: 2, groups: 3 };
  const [a, b] = [4, 5];
  const body = [
    ...get(P.src), ...load(0), ...set(a),
    ...get(P.src), ...load(16), ...set(b),
    ...get(P.dst), ...get(a), ...get(b), ...shuffle(EVEN8), ...store(0),
    ...get(P.dst), ...get(P.n), ...ADD, ...get(a), ...get(b), ...shuffle(ODD8), ...store(0),
  ];
  return { params: 4, locals: [V128, V128], code: loop(P, 16, body, 32) };
}

function assemble(): Uint8Array<ArrayBuffer> {
  const fns = [join4Body(false), join4Body(true), join2Body(false), join2Body(true), split4Body(), split2Body()];
  const names = ['join4', 'join4z', 'join2', 'join2z', 'split4', 'split2'];
  const types = [
    [0x60, ...vec([[I32], [I32], [I32], [I32]]), 0],
    [0x60, ...vec([[I32], [I32], [I32], [I32], [I32]]), 0],
  ];
  const typeOf = (f: { params: number }) => (f.params === 4 ? 0 : 1);
  const body = (f: { locals: number[]; code: number[] }) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const b = [...locals, ...f.code, 0x0b];
    return [...uleb(b.length), ...b];
  };
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(types)),
    ...section(3, vec(fns.map((f) => [typeOf(f)]))),
    ...section(5, vec([[0x00, 1]])), // one memory, at least one page
    ...section(7, vec([[...name('memory'), 0x02, 0], ...names.map((nm, i) => [...name(nm), 0x00, i])])),
    ...section(10, vec(fns.map(body))),
  ]);
}

let simdState: Simd | null | undefined;

/** The compiled joins, or undefined where this runtime has no WebAssembly SIMD. */
export function simdJoin(): Simd | undefined {
  if (simdState === undefined) {
    try {
      if (process.env.CKPT_NO_SIMD === '1') throw new Error('disabled');
      const inst = new WebAssembly.Instance(new WebAssembly.Module(assemble()));
      const e = inst.exports as unknown as Simd;
      simdState = { memory: e.memory, join4: e.join4, join4z: e.join4z, join2: e.join2, join2z: e.join2z, split4: e.split4, split2: e.split2 };
    } catch {
      simdState = null;
    }
  }
  return simdState ?? undefined;
}

/** The module's memory as bytes, grown to hold at least `bytes`. */
export function simdMemory(s: Simd, bytes: number): Uint8Array {
  const have = s.memory.buffer.byteLength;
  if (have < bytes) s.memory.grow(Math.ceil((bytes - have) / 65536));
  return new Uint8Array(s.memory.buffer);
}
