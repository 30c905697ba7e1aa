/**
 * Pinned object ids (src/core/objectId.ts): BLAKE3 in keyed mode, one key per kind of object,
 * each key BLAKE3's derive-key of "ckpt 2026-11-26 <kind>" with empty key material. Changing a
 * key changes every id of that kind, so a store written before would stop verifying.
 */
import { describe, expect, it } from 'vitest';
import { blake3Hex, createHasher, deriveKey } from '../../src/core/blake3.js';
import { objectHasher, objectId, type ObjectKind } from '../../src/core/objectId.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const BYTES = Buffer.from('ckpt');

/** Per kind: the 32-byte key, and the id of the 4 bytes "ckpt". */
const GOLDEN: Record<ObjectKind, { key: string; id: string }> = {
  chunk: { key: '4e8f3b3d8fdeda6bacfff076859758d5a60bb28ac31ce4e79c12485b570aba2d', id: 'f574c55c54ea2f0c35fff5a38b944d9cb2b4befeeadf758a1b4c86dc8defb612' },
  manifest: { key: '4cddd306202a90e1ec23e1ed9bbc83bc32e41f2dee3fdb3ea0c32babc2f00b97', id: '368371365097026211974c9950797a37aef44b38931801a9ba7f5b8d429277ca' },
  tree: { key: 'a1de814cc697da415cb056e91697596afe7ac73d34f8ea5c7682d197cd977cb0', id: '794c0e58327433e8f81b336c19d49c2339a3d49ef8bd0192d82db4b4b70c07bd' },
  commit: { key: '24b90582c94f7d1943a3fe62b4b3cd286f9828fd894ca03e26359f03cbd09f80', id: 'fd8da8269fd62484f262846d12adf63389925b10cbb9b0c87beb56c9260445b2' },
  pack: { key: '7767e945a695fa2e4a8376b5b6a6dfb227b6b2dc5028989f7932e1cf1b40422a', id: '058a70299a000e9e0f3c46bc30924f101115f192f59002ef1e0b98877b3897a7' },
  index: { key: '7139c1be066122607abf9121f1e5355beda91fd5c040095b02b5692946cb9ac3', id: '58d83fe325bdd430b5138c43479c402437778b79eb81b38b69bfdd7cfc5bf0e1' },
};

describe('object ids', () => {
  for (const [kind, g] of Object.entries(GOLDEN) as [ObjectKind, { key: string; id: string }][]) {
    it(`${kind}: key = derive-key("ckpt 2026-11-26 ${kind}"), id = keyed BLAKE3 of the bytes`, () => {
      expect(hex(deriveKey(`ckpt 2026-11-26 ${kind}`))).toBe(g.key);
      expect(objectId(kind, BYTES)).toBe(g.id);
      expect(objectHasher(kind).update(BYTES.subarray(0, 1)).update(BYTES.subarray(1)).hex()).toBe(g.id);
      expect(createHasher(Buffer.from(g.key, 'hex')).update(BYTES).hex()).toBe(g.id);
    });
  }

  it('no two kinds share an id for the same bytes, and none is the plain hash', () => {
    const ids = Object.values(GOLDEN).map((g) => g.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).not.toContain(blake3Hex(BYTES));
  });

  it('plain BLAKE3 (file and tensor hashes) is what b3sum prints', () => {
    // the BLAKE3 reference test vector for the empty input
    expect(blake3Hex(new Uint8Array(0))).toBe('af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262');
  });
});
