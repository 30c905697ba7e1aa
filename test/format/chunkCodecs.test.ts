/**
 * Pinned chunk codecs (src/store/chunkCodec.ts): each codec's stored bytes for one fixed chunk of
 * 64 float32 weights, and those bytes decoded back. The decoding side is the format's promise
 * (every stored chunk must keep decoding); the encoding side pins today's writer, zstd level 1
 * included. The transforms under zstd (byte planes, XOR, zigzag delta) are pinned on their own
 * too, since they do not depend on the zstd library.
 */
import { describe, expect, it } from 'vitest';
import { joinPlanes, splitPlanes, undoZigzagDelta, xorInto, zigzagDelta } from '../../src/store/bytePlanes.js';
import { CODEC_DELTA, CODEC_NONE, CODEC_PLANES, CODEC_ZIGZAG, CODEC_ZSTD, decodeChunk, encodeAs, type CodecId } from '../../src/store/chunkCodec.js';
import { codecInput } from './goldenInputs.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const STORED: { codec: CodecId; name: string; planes: number; bytes: string }[] = [
  {
    codec: CODEC_NONE,
    name: 'none',
    planes: 1,
    bytes:
      '00c013bd00c02f3d0000f53c0000e03a00000c3c0040733d0000373c0080543d0080313d0080ff3c00c073bd008017bd' +
      '0000c03a00008a3c000050bb004026bd00c02fbd000080390080a0bc0080e73c0000c03c0080d1bc0080b6bc0000d63c' +
      '0000f63b0080de3c008091bc00809b3c00003abc000074bb0000803b008068bd00c008bd000060bc008036bd0000e83c' +
      '00001dbc00000fbd008088bc00800a3d00c041bd00c00abd004032bd0000f7bc00000c3c00c064bd00808cbc000079bd' +
      '00c0373d00403a3d00402bbd000033bd0000443d004063bd0000183c0000483c008070bd0000a8bb00008b3c0080fb3c' +
      '0000bcbb0000773d0000fa3b0080823c',
  },
  {
    codec: CODEC_ZSTD,
    name: 'zstd',
    planes: 1,
    bytes:
      '28b52ffd004805060006102f2e504f920e90c05813614cb809abb7df67903683e0b9477a8ca1edb62020ca63e2bc77bf' +
      'ac206fa1901174bbe7430a22002100220068908e20be38fec9c7818e9bbc5eba21748be8a579dba40bf3cfc997ca5b26' +
      '47813c58d1a17e74f1f77c81f4fbe865d2a195af92bf917e24bdf20ba55f4867e863260f98f1e7d191222fcc1fcb6342' +
      '1a9d1c1b7273fa6d740cf82bf84a795ce827f1089007a5d1a196378c8feecba557c747228f16bd1ebe081e27d2e6f0a8' +
      'f07890b6276d9a3c00',
  },
  {
    codec: CODEC_PLANES,
    name: 'planes',
    planes: 4,
    bytes:
      '28b52ffd0048650500220c292d604fd20160f5404ec0680422609211525a4404798170b9ab6ed18105a0ac2b9309fb35' +
      'e3a4194221ac91214801852a6aa3b7afbfeaf6daffb25b6f3f1459ad50cd5a63f8a33e7fab5a7d5ad768c130970e118b' +
      '0782090785834793e141816149701a9c8d8082940509800a5f3c201f262b2523248712e28c0104c70d6c5e1022341bcc' +
      '894a46c0244d9a4c644a471f99ee6c92e699a46dd2a6cd4b247db69948de91010100930016',
  },
  {
    codec: CODEC_DELTA,
    name: 'delta',
    planes: 4,
    bytes:
      '28b52ffd0048ad02007403ff0000040000fe0000050000fd0000010000fc0000020000fb00000300007f0000000000ff' +
      '7f00000000010003ff00000f0000000000070c000303400336f9810d41d98163a0899fb1021ec0b8524863709413',
  },
  {
    codec: CODEC_ZIGZAG,
    name: 'zigzag',
    planes: 4,
    bytes:
      '28b52ffd0048450100f00200000700000400000900000600000100000800000300000a000005000002003b4001075239' +
      '01',
  },
];

describe('chunk codecs', () => {
  it('codec ids are 0 none, 1 zstd, 2 planes, 3 delta (XOR), 4 zigzag', () => {
    expect([CODEC_NONE, CODEC_ZSTD, CODEC_PLANES, CODEC_DELTA, CODEC_ZIGZAG]).toEqual([0, 1, 2, 3, 4]);
  });

  const { raw, base } = codecInput();
  for (const s of STORED) {
    it(`${s.codec} ${s.name}: fixed stored bytes, decoded back to the chunk`, async () => {
      const enc = await encodeAs(raw, s.codec, { planes: s.planes, base });
      expect({ codec: enc.codec, planes: enc.planes }).toEqual({ codec: s.codec, planes: s.planes });
      expect(hex(enc.data)).toBe(s.bytes);
      const back = await decodeChunk({ codec: s.codec, planes: s.planes, data: Buffer.from(s.bytes, 'hex') }, raw.length, base);
      expect(hex(back)).toBe(hex(raw));
    });
  }

  it('byte planes: byte k of every element goes to plane k; a short tail stays at the end', () => {
    const src = Uint8Array.from([0x10, 0x11, 0x12, 0x13, 0x20, 0x21, 0x22, 0x23, 0x30, 0x31, 0x32, 0x33, 0x99]);
    expect(hex(splitPlanes(src, 4))).toBe('10203011213112223213233399');
    expect(hex(joinPlanes(splitPlanes(src, 4), 4))).toBe(hex(src));
    expect(hex(splitPlanes(src, 2))).toBe('10122022303211132123313399');
  });

  it('delta transforms: XOR, and zigzag of the little-endian difference per element', () => {
    const cur = Uint8Array.from([0x00, 0x00, 0x80, 0x3f, 0xff, 0xff, 0x7f, 0x3f, 0x05]);
    const bas = Uint8Array.from([0xff, 0xff, 0x7f, 0x3f, 0x00, 0x00, 0x80, 0x3f, 0x01]);
    expect(hex(xorInto(new Uint8Array(9), cur, bas))).toBe('ffffff00ffffff0004');
    // +1 zigzags to 2, -1 to 1; the 1-byte tail is XORed
    expect(hex(zigzagDelta(cur, bas, 4))).toBe('020000000100000004');
    expect(hex(undoZigzagDelta(zigzagDelta(cur, bas, 4), bas, 4))).toBe(hex(cur));
    expect(hex(zigzagDelta(cur.subarray(0, 8), bas.subarray(0, 8), 2))).toBe('0200020001000100');
  });
});
