import { beforeAll, describe, expect, it } from 'vitest';
import { CkptError } from '../../src/core/errors.js';
import {
  CODEC_DELTA,
  CODEC_NONE,
  CODEC_PLANES,
  CODEC_ZIGZAG,
  CODEC_ZSTD,
  decodeChunk,
  encodeAs,
  encodeChunk,
  type CodecId,
  type EncodedChunk,
} from '../../src/store/chunkCodec.js';
import { seededRandom as prng } from '../../src/core/seededRandom.js';


const bytesOf = (a: Float32Array | Float64Array | Uint16Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function randomBytes(seed: number, n: number): Uint8Array {
  const rnd = prng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
}

/** Weights as training leaves them: gaussian with a small std. */
function gaussianF32(seed: number, n: number, std = 0.02): Float32Array {
  const rnd = prng(seed);
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = std * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  return f;
}

/** BF16 is the high half of an F32, rounded to nearest even. */
function toBF16(f: Float32Array): Uint16Array {
  const u = new Uint32Array(f.buffer, f.byteOffset, f.length);
  return Uint16Array.from(u, (x) => ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff);
}

const special = new Float32Array([NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38]);
const specials = bytesOf(Float32Array.from({ length: 4096 }, (_, i) => special[i % special.length]));
const nanPayloads = (() => {
  // NaNs with distinct payloads must come back bit for bit, which a float round trip would lose.
  const u = new Uint32Array(1024);
  for (let i = 0; i < u.length; i++) u[i] = 0x7f800001 + i * 977;
  return new Uint8Array(u.buffer);
})();
const denormals = bytesOf(Float32Array.from({ length: 4096 }, (_, i) => (i % 2 ? 1 : -1) * i * 1e-45));

const inputs: Record<string, { raw: Uint8Array; planes: number }> = {
  empty: { raw: new Uint8Array(0), planes: 4 },
  'one byte': { raw: Uint8Array.from([0x7f]), planes: 4 },
  'three bytes': { raw: Uint8Array.from([1, 2, 3]), planes: 4 },
  'five bytes': { raw: Uint8Array.from([1, 2, 3, 4, 5]), planes: 4 },
  random: { raw: randomBytes(1, 100_000), planes: 4 },
  'random, odd length': { raw: randomBytes(2, 65_537), planes: 4 },
  'all zero': { raw: new Uint8Array(1 << 20), planes: 4 },
  'all equal': { raw: bytesOf(new Float32Array(50_000).fill(0.125)), planes: 4 },
  'NaN, Inf, extremes': { raw: specials, planes: 4 },
  'NaN payloads': { raw: nanPayloads, planes: 4 },
  denormals: { raw: denormals, planes: 4 },
  'gaussian F32': { raw: bytesOf(gaussianF32(3, 262_144)), planes: 4 },
  'gaussian F32 plus a 3-byte tail': { raw: new Uint8Array([...bytesOf(gaussianF32(4, 10_000)), 9, 8, 7]), planes: 4 },
  BF16: { raw: bytesOf(toBF16(gaussianF32(5, 300_001))), planes: 2 },
  F64: { raw: bytesOf(Float64Array.from(gaussianF32(6, 20_000))), planes: 8 },
};

const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));

async function expectCorrupt(p: Promise<unknown>): Promise<CkptError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CkptError);
  expect((e as CkptError).code).toBe('E_CORRUPT');
  return e as CkptError;
}

describe('every codec round-trips', () => {
  for (const [name, { raw, planes }] of Object.entries(inputs)) {
    it(name, async () => {
      // A base that differs from raw in about 1 byte in 50, as a later training step would.
      const base = raw.slice();
      const rnd = prng(raw.length);
      for (let i = 0; i < base.length; i++) if (rnd() < 0.02) base[i] ^= 1 + Math.floor(rnd() * 255);
      const cases: [CodecId, number][] = [
        [CODEC_NONE, 1],
        [CODEC_ZSTD, 1],
        [CODEC_PLANES, planes],
        [CODEC_PLANES, 3],
        [CODEC_DELTA, planes],
        [CODEC_DELTA, 1],
        [CODEC_ZIGZAG, planes],
        [CODEC_ZIGZAG, planes === 4 ? 2 : 4],
      ];
      for (const [codec, p] of cases) {
        for (const level of [1, 3]) {
          const enc = await encodeAs(raw, codec, { planes: p, level, base });
          expect(enc.codec).toBe(codec);
          const back = await decodeChunk(enc, raw.length, codec === CODEC_DELTA || codec === CODEC_ZIGZAG ? base : undefined);
          expect(eq(back, raw)).toBe(true);
        }
      }
      for (const mode of ['auto', 'none'] as const) {
        for (const withBase of [false, true]) {
          const enc = await encodeChunk(raw, { mode, dtype: planes === 2 ? 'BF16' : planes === 8 ? 'F64' : 'F32', base: withBase ? base : undefined });
          expect(enc.data.length).toBeLessThanOrEqual(raw.length);
          const back = await decodeChunk(enc, raw.length, withBase ? base : undefined);
          expect(eq(back, raw)).toBe(true);
        }
      }
    });
  }
});

describe('encodeChunk in auto mode', () => {
  it('stores random bytes plain, whatever their size', async () => {
    for (const n of [100, 4096, 5000, 1 << 20]) {
      const raw = randomBytes(n, n);
      expect((await encodeChunk(raw, { mode: 'auto', dtype: 'F32' })).codec).toBe(CODEC_NONE);
      expect((await encodeChunk(raw, { mode: 'auto', dtype: 'BF16' })).codec).toBe(CODEC_NONE);
      expect((await encodeChunk(raw, { mode: 'auto' })).codec).toBe(CODEC_NONE);
    }
  });

  it('stores already-compressed bytes plain', async () => {
    const z = await encodeAs(bytesOf(gaussianF32(8, 1 << 19)), CODEC_PLANES, { planes: 4 });
    expect((await encodeChunk(z.data, { mode: 'auto' })).codec).toBe(CODEC_NONE);
  });

  it('compresses gaussian F32 and BF16 by byte planes', async () => {
    const f32 = bytesOf(gaussianF32(9, 1 << 18));
    const e32 = await encodeChunk(f32, { mode: 'auto', dtype: 'F32' });
    expect(e32).toMatchObject({ codec: CODEC_PLANES, planes: 4 });
    expect(e32.data.length).toBeLessThan(0.9 * f32.length);
    const bf16 = bytesOf(toBF16(gaussianF32(10, 1 << 19)));
    const e16 = await encodeChunk(bf16, { mode: 'auto', dtype: 'BF16' });
    expect(e16).toMatchObject({ codec: CODEC_PLANES, planes: 2 });
    expect(e16.data.length).toBeLessThan(0.8 * bf16.length);
  });

  it('uses plain zstd for compressible non-float data', async () => {
    const ids = new Uint8Array(new BigInt64Array(Array.from({ length: 100_000 }, (_, i) => BigInt(i))).buffer);
    expect((await encodeChunk(ids, { mode: 'auto', dtype: 'I64' })).codec).toBe(CODEC_ZSTD);
    expect((await encodeChunk(ids, { mode: 'auto' })).codec).toBe(CODEC_ZSTD);
  });

  it('picks the zigzag delta for floats close to their base', async () => {
    const baseF = gaussianF32(11, 1 << 18);
    const nextF = baseF.map((x, i) => (i % 10 === 0 ? x * 1.0001 : x));
    const raw = bytesOf(nextF);
    const base = bytesOf(baseF);
    const enc = await encodeChunk(raw, { mode: 'auto', dtype: 'F32', base });
    expect(enc).toMatchObject({ codec: CODEC_ZIGZAG, planes: 4 });
    expect(enc.data.length).toBeLessThan(0.2 * raw.length);
    expect(eq(await decodeChunk(enc, raw.length, base), raw)).toBe(true);
  });

  it('finds an XOR delta for bytes of no known dtype, and ignores a base of another length', async () => {
    const base = randomBytes(12, 1 << 16);
    const raw = base.slice();
    raw[100] ^= 0xff;
    expect((await encodeChunk(raw, { mode: 'auto', base })).codec).toBe(CODEC_DELTA);
    expect((await encodeChunk(raw, { mode: 'auto', base: base.subarray(1) })).codec).toBe(CODEC_NONE);
  });

  it('stores plain when asked, and for tiny chunks', async () => {
    const raw = new Uint8Array(1 << 16);
    expect(await encodeChunk(raw, { mode: 'none', dtype: 'F32' })).toEqual({ codec: CODEC_NONE, planes: 1, data: raw });
    expect((await encodeChunk(new Uint8Array(5), { mode: 'auto', dtype: 'F32' })).codec).toBe(CODEC_NONE);
  });
});

describe('decodeChunk refuses what it cannot trust', () => {
  const raw = bytesOf(gaussianF32(13, 50_000));
  const base = bytesOf(gaussianF32(14, 50_000));
  let planesEnc: EncodedChunk;
  let deltaEnc: EncodedChunk;

  beforeAll(async () => {
    planesEnc = await encodeAs(raw, CODEC_PLANES, { planes: 4 });
    deltaEnc = await encodeAs(raw, CODEC_DELTA, { planes: 4, base });
  });

  it('wrong lengths', async () => {
    await expectCorrupt(decodeChunk(planesEnc, raw.length - 1));
    await expectCorrupt(decodeChunk(planesEnc, raw.length + 1));
    await expectCorrupt(decodeChunk(await encodeAs(raw, CODEC_ZSTD), raw.length * 2));
    await expectCorrupt(decodeChunk({ codec: CODEC_NONE, planes: 1, data: raw }, raw.length - 4));
    await expectCorrupt(decodeChunk(planesEnc, -1));
  });

  it('unknown codecs and plane counts', async () => {
    await expectCorrupt(decodeChunk({ ...planesEnc, codec: 7 }, raw.length));
    await expectCorrupt(decodeChunk({ ...planesEnc, planes: 0 }, raw.length));
    await expectCorrupt(decodeChunk({ ...planesEnc, planes: 1000 }, raw.length));
    await expectCorrupt(decodeChunk({ ...planesEnc, codec: CODEC_ZSTD, planes: 4 }, raw.length));
    await expectCorrupt(decodeChunk({ ...deltaEnc, codec: CODEC_ZIGZAG, planes: 3 }, raw.length, base));
  });

  it('refuses to encode a delta it could not decode', async () => {
    const usage = async (p: Promise<unknown>) => expect((await p.catch((e: unknown) => e)) as CkptError).toMatchObject({ code: 'E_USAGE' });
    await usage(encodeAs(raw, CODEC_ZIGZAG, { planes: 3, base }));
    await usage(encodeAs(raw, CODEC_DELTA, { planes: 4 }));
    await usage(encodeAs(raw, CODEC_ZIGZAG, { planes: 4, base: base.subarray(2) }));
  });

  it('a delta without its base, or with a base of another length', async () => {
    const zz = await encodeAs(raw, CODEC_ZIGZAG, { planes: 4, base });
    for (const enc of [deltaEnc, zz]) {
      await expectCorrupt(decodeChunk(enc, raw.length));
      await expectCorrupt(decodeChunk(enc, raw.length, base.subarray(4)));
      expect(eq(await decodeChunk(enc, raw.length, base), raw)).toBe(true);
    }
  });

  it('truncated data', async () => {
    for (const cut of [0, 1, 4, 5, 6, 9, 100, planesEnc.data.length >> 1, planesEnc.data.length - 1]) {
      await expectCorrupt(decodeChunk({ ...planesEnc, data: planesEnc.data.subarray(0, cut) }, raw.length));
    }
  });

  it('trailing bytes and a second frame', async () => {
    const d = planesEnc.data;
    await expectCorrupt(decodeChunk({ ...planesEnc, data: new Uint8Array([...d, 0]) }, raw.length));
    const half = await encodeAs(raw.subarray(0, raw.length / 2), CODEC_ZSTD);
    const twice = new Uint8Array([...half.data, ...half.data]);
    await expectCorrupt(decodeChunk({ codec: CODEC_ZSTD, planes: 1, data: twice }, raw.length));
  });

  it('garbled bytes: an error that says corrupt, or bytes the caller\'s hash check will refuse', async () => {
    const rnd = prng(15);
    let refused = 0;
    for (let t = 0; t < 300; t++) {
      const d = planesEnc.data.slice();
      const at = t < 40 ? t : Math.floor(rnd() * d.length);
      d[at] ^= 1 + Math.floor(rnd() * 255);
      const out = await decodeChunk({ ...planesEnc, data: d }, raw.length).catch((e: unknown) => e);
      if (out instanceof Uint8Array) {
        expect(out.length).toBe(raw.length);
      } else {
        expect(out).toBeInstanceOf(CkptError);
        expect((out as CkptError).code).toBe('E_CORRUPT');
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(40); // every header byte at least
  });

  it('frames that would expand far beyond the chunk are refused before decompressing', async () => {
    // A frame of 2000 RLE blocks of 128 KiB claims 250 MiB for a 1 KiB chunk.
    const header = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38]; // window 128 KiB, no content size
    const rle = (last: number) => {
      const h = ((128 * 1024) << 3) | (1 << 1) | last;
      return [h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0x41];
    };
    const blocks: number[] = [];
    for (let i = 0; i < 2000; i++) blocks.push(...rle(i === 1999 ? 1 : 0));
    const e = await expectCorrupt(decodeChunk({ codec: CODEC_ZSTD, planes: 1, data: new Uint8Array([...header, ...blocks]) }, 1024));
    expect(e.message).toMatch(/cannot produce/);
    // 2000 compressed blocks of two bytes could each produce 128 KiB.
    const comp: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const h = (2 << 3) | (2 << 1) | (i === 1999 ? 1 : 0);
      comp.push(h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0, 0);
    }
    const e2 = await expectCorrupt(decodeChunk({ codec: CODEC_ZSTD, planes: 1, data: new Uint8Array([...header, ...comp]) }, 1024));
    expect(e2.message).toMatch(/expand/);
  });
});
