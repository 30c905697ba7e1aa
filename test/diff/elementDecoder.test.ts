import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeElements, decodeTable, decodedElementBytes, isDecodableDType } from '../../src/diff/elementDecoder.js';

const fixture = (name: string) => {
  const b = readFileSync(new URL(`../../fixtures/diff/decode/${name}.f64`, import.meta.url));
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

/** Every bit pattern of an n-bit type, little-endian. */
function allPatterns(bits: 8 | 16): Uint8Array {
  return bits === 8
    ? Uint8Array.from({ length: 256 }, (_, i) => i)
    : new Uint8Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer);
}

/** Same value, NaN equal to NaN, -0 distinct from +0. */
function sameValues(got: Float64Array, want: Float64Array): number[] {
  const bad: number[] = [];
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) bad.push(i);
  return bad;
}

describe('decodeElements against PyTorch / the OCP spec', () => {
  for (const dtype of ['BF16', 'F16'] as const) {
    it(`${dtype}: all 65536 patterns match torch's .double()`, () => {
      const want = fixture(dtype);
      expect(want.length).toBe(65536);
      expect(sameValues(decodeElements(allPatterns(16), dtype), want)).toEqual([]);
      expect(sameValues(decodeTable(dtype), want)).toEqual([]);
    });
  }
  for (const dtype of ['F8_E4M3', 'F8_E5M2', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ'] as const) {
    it(`${dtype}: all 256 patterns match the reference values`, () => {
      const want = fixture(dtype);
      expect(want.length).toBe(256);
      expect(sameValues(decodeElements(allPatterns(8), dtype), want)).toEqual([]);
    });
  }

  it('F8 landmarks: E4M3 has no Inf, E5M2 does, FNUZ has one NaN and no -0', () => {
    const e4 = decodeElements(allPatterns(8), 'F8_E4M3');
    expect([e4[0x7e], e4[0xfe], e4[0x01]]).toEqual([448, -448, 2 ** -9]);
    expect([...e4].filter(Number.isNaN).length).toBe(2);
    expect([...e4].some((x) => x === Infinity || x === -Infinity)).toBe(false);
    const e5 = decodeElements(allPatterns(8), 'F8_E5M2');
    expect([e5[0x7c], e5[0xfc], e5[0x7b]]).toEqual([Infinity, -Infinity, 57344]);
    const fnuz = decodeElements(allPatterns(8), 'F8_E4M3FNUZ');
    expect([...fnuz].filter(Number.isNaN).length).toBe(1);
    expect(Number.isNaN(fnuz[0x80])).toBe(true);
    expect(fnuz[0x7f]).toBe(240);
  });

  it('F8_E8M0 is a power of two with 0xff as NaN', () => {
    const v = decodeElements(Uint8Array.from([0, 127, 128, 254, 255]), 'F8_E8M0');
    expect([...v.subarray(0, 4)]).toEqual([2 ** -127, 1, 2, 2 ** 127]);
    expect(Number.isNaN(v[4])).toBe(true);
  });
});

describe('decodeElements of plain types', () => {
  const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

  it('floats and integers of every width decode exactly', () => {
    const f64 = Float64Array.from([1.5, -0, Math.PI, 1e300, -Infinity]);
    expect(sameValues(decodeElements(bytesOf(f64), 'F64'), f64)).toEqual([]);
    const f32 = Float32Array.from([0.1, -2.5, 3e38, NaN]);
    expect(sameValues(decodeElements(bytesOf(f32), 'F32'), Float64Array.from(f32))).toEqual([]);
    const cases: [string, ArrayBufferView & ArrayLike<number>][] = [
      ['I8', Int8Array.from([-128, -1, 0, 127])],
      ['U8', Uint8Array.from([0, 1, 255])],
      ['I16', Int16Array.from([-32768, -1, 32767])],
      ['U16', Uint16Array.from([0, 65535])],
      ['I32', Int32Array.from([-(2 ** 31), -7, 2 ** 31 - 1])],
      ['U32', Uint32Array.from([0, 2 ** 32 - 1])],
    ];
    for (const [dtype, arr] of cases) {
      expect([...decodeElements(bytesOf(arr), dtype)], dtype).toEqual(Array.from(arr));
    }
    expect([...decodeElements(Uint8Array.from([0, 1, 2, 255]), 'BOOL')]).toEqual([0, 1, 1, 1]);
  });

  it('I64 and U64 round to the nearest float64, as Number(BigInt) does', () => {
    const i64 = BigInt64Array.from([0n, -1n, 2n ** 53n + 1n, -(2n ** 63n), 2n ** 63n - 1n, -(2n ** 62n) - 12345n]);
    expect([...decodeElements(bytesOf(i64), 'I64')]).toEqual([...i64].map(Number));
    const u64 = BigUint64Array.from([0n, 2n ** 64n - 1n, 2n ** 53n + 3n, 4294967296n]);
    expect([...decodeElements(bytesOf(u64), 'U64')]).toEqual([...u64].map(Number));
  });

  it('reads input at any byte offset', () => {
    const f64 = Float64Array.from([1, -2, 3.25]);
    const f32 = Float32Array.from([1, -2, 3.25]);
    for (const [dtype, src] of [
      ['F64', bytesOf(f64)],
      ['F32', bytesOf(f32)],
    ] as const) {
      for (let shift = 1; shift < 8; shift++) {
        const buf = new Uint8Array(src.byteLength + shift);
        buf.set(src, shift);
        expect([...decodeElements(buf.subarray(shift), dtype)]).toEqual([1, -2, 3.25]);
      }
    }
    const bf = new Uint8Array(5);
    bf.set(bytesOf(Uint16Array.from([0x3f80, 0xc000])), 1); // 1.0, -2.0
    expect([...decodeElements(bf.subarray(1), 'BF16')]).toEqual([1, -2]);
    const i64 = new Uint8Array(19);
    i64.set(bytesOf(BigInt64Array.from([-5n, 2n ** 40n])), 3);
    expect([...decodeElements(i64.subarray(3, 19), 'I64')]).toEqual([-5, 2 ** 40]);
  });

  it('writes into a given buffer, and refuses partial elements and unknown types', () => {
    const out = new Float64Array(8).fill(9);
    const res = decodeElements(Uint8Array.from([1, 2]), 'U8', out);
    expect(res).toBe(out);
    expect([...out.subarray(0, 3)]).toEqual([1, 2, 9]);
    expect(() => decodeElements(new Uint8Array(3), 'F16')).toThrow(/whole number/);
    expect(() => decodeElements(new Uint8Array(4), 'Q4_0')).toThrow(/cannot decode/);
    expect(() => decodeElements(new Uint8Array(16), 'F32', new Float64Array(2))).toThrow(/holds/);
    expect(isDecodableDType('Q4_K')).toBe(false);
    expect(isDecodableDType('F4')).toBe(false);
    expect(decodedElementBytes('BF16')).toBe(2);
  });
});
