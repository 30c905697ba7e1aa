import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bufferSource } from '../../src/core/byteSource.js';
import { detectFormat, parseCheckpoint } from '../../src/formats/formatRegistry.js';
import { npz } from '../../src/formats/npz.js';
import { checkAgainstListing, type Listed } from './listing.js';

const dir = fileURLToPath(new URL('../../fixtures/numpy/', import.meta.url));
const read = (f: string) => new Uint8Array(readFileSync(join(dir, f)));

const good = readdirSync(dir).filter((f) => f.endsWith('.npz'));

describe('npz fixtures', () => {
  it('has fixtures', () => expect(good.length).toBeGreaterThanOrEqual(4));

  for (const file of good) {
    it(`parses ${file} as numpy's listing says`, async () => {
      const bytes = read(file);
      const listing = JSON.parse(readFileSync(join(dir, file.replace(/\.npz$/, '.json')), 'utf8')) as Listed[];
      const layout = await parseCheckpoint(bufferSource(bytes));
      expect(layout.format).toBe('npz');
      checkAgainstListing(layout, bytes, listing);
    });
  }
});

describe('npz details', () => {
  it('names stored arrays by key, including keys with a slash', async () => {
    const layout = await npz.parse(bufferSource(read('stored.npz')));
    const names = layout.segments.flatMap((s) => (s.kind === 'tensor' ? [s.name] : []));
    expect(names).toEqual(['weight', 'bias', 'step', 'mask', 'layer1/weight', 'model.layers.0.self_attn.q_proj.weight']);
    expect(layout.info).not.toHaveProperty('compressedMembers');
    expect((layout.info as { arrays: Record<string, unknown> }).arrays['step']).toEqual({ descr: '<i8', shape: [], fortranOrder: false });
    // the zip framing between and after the arrays is verbatim bytes
    expect(layout.segments[layout.segments.length - 1].kind).toBe('bytes');
  });

  it('keeps deflated members opaque and lists them', async () => {
    const layout = await npz.parse(bufferSource(read('compressed.npz')));
    expect(layout.segments).toEqual([{ kind: 'bytes', offset: 0, length: layout.size }]);
    expect(layout.info).toMatchObject({
      compressedMembers: ['weight', 'bias', 'step', 'mask', 'layer1/weight', 'model.layers.0.self_attn.q_proj.weight'],
    });
    expect(layout.warnings?.[0]).toMatch(/6 compressed member/);
  });

  it('uses numpy names for positional arrays', async () => {
    const layout = await npz.parse(bufferSource(read('positional.npz')));
    expect(layout.segments.flatMap((s) => (s.kind === 'tensor' ? [s.name] : []))).toEqual(['arr_0', 'arr_1']);
  });

  it('is detected from the bytes, even when the head cuts a long key short', async () => {
    for (const f of ['stored.npz', 'compressed.npz', 'long_key.npz']) {
      expect((await detectFormat(bufferSource(read(f)))).name).toBe('npz');
    }
  });

  it('does not claim zips that are not npz', () => {
    const head = (name: string, flags = 0) => {
      const b = new Uint8Array(64);
      b.set([0x50, 0x4b, 0x03, 0x04]);
      b[6] = flags & 0xff;
      b[7] = flags >> 8;
      const n = new TextEncoder().encode(name);
      b[26] = n.length & 0xff;
      b[27] = n.length >> 8;
      b.set(n.subarray(0, 34), 30);
      return b;
    };
    expect(npz.detect(head('archive/data.pkl'), 1000)).toBe(false);
    expect(npz.detect(head('readme.txt'), 1000)).toBe(false);
    // torch.save streams its records with data descriptors, as flags 0x0808 show
    expect(npz.detect(head('a_rather_long_checkpoint_folder_name/data.pkl', 0x0808), 1000)).toBe(false);
    expect(npz.detect(head('model.layers.0.self_attn.q_proj.weight.npy'), 1000)).toBe(true);
    expect(npz.detect(head('x.npy'), 1000)).toBe(true);
  });
});
