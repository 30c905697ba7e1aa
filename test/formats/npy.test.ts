import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bufferSource } from '../../src/core/byteSource.js';
import { FormatError } from '../../src/core/errors.js';
import type { CheckpointFormat } from '../../src/formats/checkpointFormat.js';
import { detectFormat, parseCheckpoint } from '../../src/formats/formatRegistry.js';
import { npy, parseNpyHeaderAt } from '../../src/formats/npy.js';
import { npz } from '../../src/formats/npz.js';
import { checkAgainstListing, type Listed } from './listing.js';

const dir = fileURLToPath(new URL('../../fixtures/numpy/', import.meta.url));
const badDir = join(dir, 'bad');
const read = (path: string) => new Uint8Array(readFileSync(path));

/** An .npy with a hand-written header literal (v1.0, padded like numpy pads it). */
function handMade(literal: string, data: Uint8Array): Uint8Array {
  let h = literal;
  while ((10 + h.length + 1) % 64 !== 0) h += ' ';
  h += '\n';
  const head = new Uint8Array(10 + h.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, h.length & 0xff, h.length >> 8]);
  head.set(new TextEncoder().encode(h), 10);
  return new Uint8Array(Buffer.concat([head, data]));
}

const good = readdirSync(dir).filter((f) => f.endsWith('.npy'));

describe('npy fixtures', () => {
  it('has fixtures', () => expect(good.length).toBeGreaterThanOrEqual(10));

  for (const file of good) {
    it(`parses ${file} as numpy's listing says`, async () => {
      const bytes = read(join(dir, file));
      const listing = JSON.parse(readFileSync(join(dir, file.replace(/\.npy$/, '.json')), 'utf8')) as Listed[];
      const layout = await parseCheckpoint(bufferSource(bytes));
      expect(layout.format).toBe('npy');
      checkAgainstListing(layout, bytes, listing);
    });
  }
});

describe('npy details', () => {
  const load = async (f: string) => npy.parse(bufferSource(read(join(dir, f))));

  it('reads versions 1.0, 2.0 and 3.0', async () => {
    expect((await load('f32_v1.npy')).info).toMatchObject({ version: '1.0', descr: '<f4' });
    expect((await load('i64_v2.npy')).info).toMatchObject({ version: '2.0', descr: '<i8', shape: [2, 3] });
    expect((await load('u8_v3.npy')).info).toMatchObject({ version: '3.0', descr: '|u1' });
    expect((await load('structured_v3.npy')).info).toMatchObject({ version: '3.0', descr: [['重み', '<f4'], ['n', '<i2']] });
  });

  it('keeps the shape of a Fortran-ordered array and says so', async () => {
    const layout = await load('fortran.npy');
    expect(layout.info).toMatchObject({ fortranOrder: true, shape: [3, 2] });
    expect(layout.segments[1]).toMatchObject({ kind: 'tensor', name: 'array', shape: [3, 2], length: 24 });
  });

  it('handles 0-d and empty arrays', async () => {
    expect((await load('scalar_0d.npy')).segments[1]).toMatchObject({ kind: 'tensor', shape: [], length: 8, dtype: 'F64' });
    expect((await load('empty.npy')).segments[1]).toMatchObject({ kind: 'tensor', shape: [0, 3], length: 0 });
  });

  it('keeps dtypes ckpt has no tensor type for as opaque bytes, with a warning', async () => {
    for (const [file, warning] of [
      ['big_endian.npy', /big-endian dtype '>f4'/],
      ['unicode_str.npy', /dtype '<U3' has no ckpt tensor type/],
      ['structured_v3.npy', /structured dtype/],
    ] as const) {
      const layout = await load(file);
      expect(layout.segments.every((s) => s.kind === 'bytes')).toBe(true);
      expect(layout.warnings?.join('\n')).toMatch(warning);
    }
  });

  it('reads the Python literals numpy and other writers produce', async () => {
    const four = new Uint8Array(4);
    for (const literal of [
      `{"descr": "<f4", "fortran_order": False, "shape": (1,)}`,
      `{'shape': (1L,), 'fortran_order': False, 'descr': '<f4'}`,
      `{'descr':'<f4','fortran_order':False,'shape':((1),)}`,
      `{'descr': '\\x3cf4', 'fortran_order': False, 'shape': (1,), }`,
    ]) {
      const layout = await npy.parse(bufferSource(handMade(literal, four)));
      expect(layout.segments[1]).toMatchObject({ kind: 'tensor', dtype: 'F32', shape: [1] });
    }
    // "(4)" is an int in Python, not a tuple
    await expect(npy.parse(bufferSource(handMade(`{'descr': '<f4', 'fortran_order': False, 'shape': (4)}`, four)))).rejects.toThrow(
      /not a tuple/,
    );
    await expect(npy.parse(bufferSource(handMade(`{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}`, four)))).rejects.toThrow(
      /duplicate header key 'descr'/,
    );
    const deep = '('.repeat(100) + ')'.repeat(100);
    await expect(npy.parse(bufferSource(handMade(`{'descr': ${deep}, 'fortran_order': False, 'shape': ()}`, four)))).rejects.toThrow(
      /nests deeper/,
    );
  });

  it('parses an npy object inside a larger file at an offset', async () => {
    const inner = read(join(dir, 'f32_v1.npy'));
    const outer = new Uint8Array(inner.length + 100);
    outer.set(inner, 50);
    const h = await parseNpyHeaderAt(bufferSource(outer), 50, 50 + inner.length, 'npz');
    expect(h).toMatchObject({ version: '1.0', dataOffset: 50 + 128, dataLength: 48, dtype: 'F32', shape: [3, 4] });
  });

  it('is detected from the bytes, whatever the name', async () => {
    const bytes = read(join(dir, 'f16_v1.npy'));
    expect((await detectFormat(bufferSource(bytes))).name).toBe('npy');
    expect(npy.detect(new TextEncoder().encode('NUMPY.....'), 10)).toBe(false);
  });
});

describe('malformed npy and npz', () => {
  const faults = JSON.parse(readFileSync(join(badDir, 'faults.json'), 'utf8')) as Record<string, string>;

  it('has at least 6 malformed files, each listed', () => {
    const files = readdirSync(badDir).filter((f) => f !== 'faults.json');
    expect(files.filter((f) => f.endsWith('.npy')).length).toBeGreaterThanOrEqual(6);
    expect(files.sort()).toEqual(Object.keys(faults).sort());
  });

  for (const [file, pattern] of Object.entries(faults)) {
    it(`refuses ${file}`, async () => {
      const bytes = read(join(badDir, file));
      const format: CheckpointFormat = file.endsWith('.npz') ? npz : npy;
      const err = await format.parse(bufferSource(bytes)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FormatError);
      const fe = err as FormatError;
      expect(fe.message).toMatch(new RegExp(pattern));
      expect(fe.format).toBe(format.name);
      expect(fe.offset).toBeGreaterThanOrEqual(0);
      expect(fe.offset).toBeLessThan(bytes.length);
    });
  }
});
