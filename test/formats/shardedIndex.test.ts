import { describe, expect, it } from 'vitest';
import { FormatError } from '../../src/core/errors.js';
import { isShardIndexName, parseShardIndex } from '../../src/formats/shardedIndex.js';

const enc = (s: string) => new TextEncoder().encode(s);

describe('shard index', () => {
  it('recognises index names', () => {
    expect(isShardIndexName('model.safetensors.index.json')).toBe(true);
    expect(isShardIndexName('pytorch_model.bin.index.json')).toBe(true);
    expect(isShardIndexName('unet/diffusion_pytorch_model.safetensors.index.json')).toBe(true);
    expect(isShardIndexName('model.safetensors')).toBe(false);
    expect(isShardIndexName('config.json')).toBe(false);
    expect(isShardIndexName('.safetensors.index.json')).toBe(false);
  });

  it('reads weight_map and metadata', () => {
    const idx = parseShardIndex(
      enc(
        JSON.stringify({
          metadata: { total_size: 1234 },
          weight_map: { 'a.weight': 'model-00001-of-00002.safetensors', __proto__x: 'b', 'é': 'model-00002-of-00002.safetensors' },
        }),
      ),
      'model.safetensors.index.json',
    );
    expect(idx.metadata).toEqual({ total_size: 1234 });
    expect(idx.weightMap['a.weight']).toBe('model-00001-of-00002.safetensors');
    expect(idx.weightMap['é']).toBe('model-00002-of-00002.safetensors');
  });

  it('keeps a tensor named __proto__ as an entry', () => {
    const idx = parseShardIndex(enc('{"weight_map": {"__proto__": "s.safetensors"}}'), 'x.safetensors.index.json');
    expect(Object.keys(idx.weightMap)).toEqual(['__proto__']);
    expect(idx.metadata).toEqual({});
  });

  const bad: Array<[string, RegExp]> = [
    ['{"weight_map": {"a": "s"}', /not valid JSON/],
    ['[1, 2]', /not a JSON object/],
    ['{"metadata": {}}', /no weight_map/],
    ['{"weight_map": []}', /weight_map is not an object/],
    ['{"weight_map": {"a": 3}}', /"a" is not a file name/],
    ['{"weight_map": {"a": "../../etc/passwd"}}', /outside the index's folder/],
    ['{"weight_map": {"a": "/abs.safetensors"}}', /outside the index's folder/],
    ['{"weight_map": {}, "metadata": 5}', /metadata is not an object/],
  ];
  for (const [text, fault] of bad) {
    it(`refuses ${text}`, () => {
      let err: unknown;
      try {
        parseShardIndex(enc(text), 'model.safetensors.index.json');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(FormatError);
      expect((err as FormatError).message).toMatch(fault);
      expect((err as FormatError).message).toMatch(/^model\.safetensors\.index\.json: /);
      expect((err as FormatError).offset).toBeLessThan(text.length);
    });
  }

  it('refuses bytes that are not UTF-8', () => {
    expect(() => parseShardIndex(new Uint8Array([0x7b, 0xff, 0x7d]), 'i.bin.index.json')).toThrow(/not valid UTF-8/);
  });
});
