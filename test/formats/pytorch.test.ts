import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { blake3Hex } from '../../src/core/blake3.js';
import { bufferSource } from '../../src/core/byteSource.js';
import { dtypeByName } from '../../src/core/dtypes.js';
import { FormatError, UnsafePickleError } from '../../src/core/errors.js';
import type { Layout, TensorSegment, TensorView } from '../../src/core/layout.js';
import { assertLayoutCovers } from '../../src/core/layout.js';
import { detectFormat, parseCheckpoint } from '../../src/formats/formatRegistry.js';
import { isNode, runPickle } from '../../src/formats/pickleMachine.js';
import type { PDict, PickleValue } from '../../src/formats/pickleMachine.js';
import { pytorch } from '../../src/formats/pytorch.js';
import { pytorchLegacy } from '../../src/formats/pytorchLegacy.js';
import { readZipEntries } from '../../src/formats/zipArchive.js';

const DIR = join(import.meta.dirname, '../../fixtures/pytorch');
const read = (p: string) => new Uint8Array(readFileSync(join(DIR, p)));

interface Expected {
  name: string;
  dtype: string;
  shape: number[];
  blake3: string;
}

const good = readdirSync(DIR)
  .filter((f) => f.endsWith('.pt') && f !== 'legacy.pt')
  .sort();

function segmentOf(layout: Layout, view: TensorView): TensorSegment {
  const s = layout.segments.find((x): x is TensorSegment => x.kind === 'tensor' && x.name === view.segment);
  if (!s) throw new Error(`no segment ${view.segment}`);
  return s;
}

/** The bytes torch's `tensor.contiguous()` would hold, gathered from the storage by strides. */
function gather(file: Uint8Array, seg: TensorSegment, view: TensorView): Uint8Array {
  const el = (dtypeByName(view.dtype)?.bits ?? 8) / 8;
  const storage = file.subarray(seg.offset, seg.offset + seg.length);
  const n = view.shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(n * el);
  const idx = view.shape.map(() => 0);
  const stride = view.stride ?? [];
  for (let i = 0; i < n; i++) {
    let e = view.storageOffset ?? 0;
    for (let d = 0; d < idx.length; d++) e += idx[d] * stride[d];
    out.set(storage.subarray(e * el, (e + 1) * el), i * el);
    for (let d = idx.length - 1; d >= 0; d--) {
      if (++idx[d] < view.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

async function parse(file: Uint8Array, allowUnsafePickle = false): Promise<Layout> {
  return parseCheckpoint(bufferSource(file), undefined, { allowUnsafePickle });
}

describe('pytorch: real torch.save files', () => {
  it('has fixtures', () => expect(good.length).toBeGreaterThanOrEqual(12));

  for (const f of good) {
    it(`${f}: views match Python's listing, segments rebuild the file`, async () => {
      const file = read(f);
      const expected = JSON.parse(readFileSync(join(DIR, f.replace(/\.pt$/, '.json')), 'utf8')) as Expected[];
      expect((await detectFormat(bufferSource(file))).name).toBe('pytorch');
      const layout = await parse(file);
      assertLayoutCovers(layout);
      expect(layout.size).toBe(file.length);
      const rebuilt = Buffer.concat(layout.segments.map((s) => file.subarray(s.offset, s.offset + s.length)));
      expect(rebuilt.equals(Buffer.from(file))).toBe(true);

      const views = layout.tensors ?? [];
      expect(views.map((v) => v.name).sort()).toEqual(expected.map((e) => e.name).sort());
      for (const e of expected) {
        const v = views.find((x) => x.name === e.name) as TensorView;
        expect({ name: v.name, dtype: v.dtype, shape: v.shape }).toEqual({ name: e.name, dtype: e.dtype, shape: e.shape });
        const seg = segmentOf(layout, v);
        const el = (dtypeByName(v.dtype)?.bits ?? 8) / 8;
        const covers =
          v.storageOffset === 0 && seg.length === e.shape.reduce((a, b) => a * b, 1) * el && isRowMajor(v.shape, v.stride ?? []);
        if (covers) expect(blake3Hex(file.subarray(seg.offset, seg.offset + seg.length))).toBe(e.blake3);
        expect(blake3Hex(gather(file, seg, v))).toBe(e.blake3);
      }
      // Every storage record is a tensor segment, so unchanged storages dedup whatever uses them.
      const storages = (await readZipEntries(bufferSource(file), 'pytorch')).filter((e) => /^[^/]+\/data\/[^/]+$/.test(e.name));
      expect(layout.segments.filter((s) => s.kind === 'tensor').length).toBe(storages.length);
    });
  }

  it('tied weights share one segment', async () => {
    const layout = await parse(read('tied.pt'));
    const views = layout.tensors ?? [];
    const embed = views.find((v) => v.name === 'embed.weight') as TensorView;
    const head = views.find((v) => v.name === 'head.weight') as TensorView;
    expect(embed.segment).toBe('embed.weight');
    expect(head.segment).toBe('embed.weight');
    const seg = segmentOf(layout, embed);
    expect(seg.shape).toEqual([32, 16]);
    expect(layout.segments.filter((s) => s.kind === 'tensor' && s.name === 'embed.weight')).toHaveLength(1);
  });

  it('views of one storage are one flat segment named after the first view', async () => {
    const layout = await parse(read('views.pt'));
    const tensorSegs = layout.segments.filter((s): s is TensorSegment => s.kind === 'tensor');
    expect(tensorSegs.map((s) => [s.name, s.dtype, s.shape])).toEqual([['t', 'F32', [24]]]);
    const [t, slice] = layout.tensors ?? [];
    expect(t).toMatchObject({ name: 't', shape: [6, 4], stride: [1, 6], storageOffset: 0, segment: 't' });
    expect(slice).toMatchObject({ name: 'slice', shape: [2, 3], stride: [6, 1], storageOffset: 8, segment: 't' });

    const withBase = await parse(read('views_with_base.pt'));
    const base = (withBase.tensors ?? []).find((v) => v.name === 'base') as TensorView;
    expect(segmentOf(withBase, base).shape).toEqual([24]);
    const expanded = (withBase.tensors ?? []).find((v) => v.name === 'expanded') as TensorView;
    expect(expanded.stride).toEqual([0, 1]);
    expect(segmentOf(withBase, expanded).shape).toEqual([4]);
  });

  it('a training checkpoint: tensor paths and plain values', async () => {
    const layout = await parse(read('training.pt'));
    const names = (layout.tensors ?? []).map((v) => v.name);
    expect(names).toContain('model.blocks.0.attn.in_proj_weight');
    expect(names).toContain('optimizer.state.3.exp_avg');
    expect(names).toContain('optimizer.state.3.step');
    const values = (layout.info as { values: Record<string, unknown> }).values;
    expect(values.step).toBe(2);
    expect(typeof values.loss).toBe('number');
    expect(values['args.lr']).toBe(0.001);
    expect(values['args.batch_size']).toBe(8);
    expect(values['args.name']).toBe('tiny');
    expect(values['args.betas']).toEqual([0.9, 0.999]);
    expect(values['args.use_amp']).toBe(false);
    expect(values.np_loss).toBe(0.25);
    expect(values.np_step).toBe(2);
    expect(values.np_half).toBe(1.5);
    expect(values.np_arr).toEqual({ ndarray: { dtype: 'f8', shape: [4], values: [0, 1, 2, 3] } });
    expect((values.classes as string[]).sort()).toEqual(['cat', 'dog']);
    expect(values['optimizer.param_groups.0.lr']).toBe(0.001);
    expect(values['optimizer.param_groups.0.weight_decay']).toBe(0.01);
    expect(JSON.parse(JSON.stringify(values))).toEqual(values);
    expect(layout.warnings).toBeUndefined();
  });

  it('a _rebuild_tensor_v3 tensor takes its dtype from the call, not the untyped storage', async () => {
    const layout = await parse(read('handmade_v3.pt'));
    expect(layout.tensors).toEqual([{ name: 'w', dtype: 'F16', shape: [2, 3], segment: 'w', storageOffset: 0, stride: [3, 1] }]);
    expect((layout.info as { values: Record<string, unknown> }).values).toEqual({ step: 10 });
  });

  it('0-dim tensors keep an empty shape', async () => {
    const layout = await parse(read('zero_dim.pt'));
    for (const v of layout.tensors ?? []) expect(v.shape).toEqual([]);
    expect(layout.segments.filter((s) => s.kind === 'tensor').map((s) => (s as TensorSegment).shape)).toEqual([[], [], []]);
  });
});

describe('pytorch: detection', () => {
  it('the legacy format is detected and stored opaque', async () => {
    const file = read('legacy.pt');
    expect((await detectFormat(bufferSource(file))).name).toBe('pytorch-legacy');
    expect(pytorch.detect(file.subarray(0, 64), file.length)).toBe(false);
    const layout = await parse(file);
    expect(layout.format).toBe('pytorch-legacy');
    expect(layout.segments).toEqual([{ kind: 'bytes', offset: 0, length: file.length }]);
    expect(layout.warnings).toEqual(['legacy (pre-1.6) PyTorch format: stored as opaque bytes']);
  });

  it('a zip whose first record is not <root>/data.pkl is not PyTorch', () => {
    const head = new Uint8Array(64);
    head.set([0x50, 0x4b, 0x03, 0x04]);
    const name = new TextEncoder().encode('x.npy');
    head[26] = name.length;
    head.set(name, 30);
    expect(pytorch.detect(head, 1000)).toBe(false);
    expect(pytorchLegacy.detect(head, 1000)).toBe(false);
  });

  it('a long root name hidden past the head is still recognised by torch alignment', () => {
    const head = new Uint8Array(64);
    head.set([0x50, 0x4b, 0x03, 0x04]);
    const name = new TextEncoder().encode('a_very_long_checkpoint_name_step_000100/data.pkl');
    head[26] = name.length;
    head[6] = 0x08;
    head[7] = 0x08;
    head[28] = 128 - 30 - name.length;
    head.set(name.subarray(0, 34), 30);
    expect(pytorch.detect(head, 1000)).toBe(true);
  });
});

describe('pytorch: unsafe pickles', () => {
  const cases = JSON.parse(readFileSync(join(DIR, 'unsafe/unsafe.json'), 'utf8')) as Array<{ file: string; global: string }>;
  it('has cases', () => expect(cases.length).toBeGreaterThanOrEqual(6));

  for (const c of cases) {
    it(`${c.file} is refused naming ${c.global}, and parses with a warning when allowed`, async () => {
      const file = read(`unsafe/${c.file}`);
      const err = await parse(file).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnsafePickleError);
      expect((err as UnsafePickleError).globals).toContain(c.global);
      expect((err as UnsafePickleError).message).toContain(c.global);

      const layout = await parse(file, true);
      assertLayoutCovers(layout);
      expect(layout.warnings?.some((w) => w.includes(c.global))).toBe(true);
      if (c.file !== 'getattr_named.pt') expect((layout.tensors ?? []).map((v) => v.name)).toContain('weight');
    });
  }

  it('nothing ran', () => {
    const pwned = readdirSync('/tmp').filter((f) => f.startsWith('ckpt-pwned-'));
    expect(pwned).toEqual([]);
    expect(existsSync('/tmp/ckpt-pwned-os')).toBe(false);
  });
});

describe('pytorch: malformed files', () => {
  const faults = JSON.parse(readFileSync(join(DIR, 'bad/faults.json'), 'utf8')) as Record<string, string>;
  it('has cases', () => expect(Object.keys(faults).length).toBeGreaterThanOrEqual(12));

  for (const [f, fault] of Object.entries(faults)) {
    it(`${f}: ${fault}`, async () => {
      const file = read(`bad/${f}`);
      const err = await parseCheckpoint(bufferSource(file), 'pytorch').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FormatError);
      const fe = err as FormatError;
      expect(fe.message).toMatch(new RegExp(fault));
      expect(fe.format).toBe('pytorch');
      expect(fe.offset).toBeGreaterThanOrEqual(0);
      expect(fe.offset).toBeLessThan(file.length);
    });
  }
});

describe('zip archive', () => {
  /** One stored entry whose sizes and offset live only in ZIP64 extra fields, then ZIP64 end records. */
  function zip64(name: string, data: Uint8Array): Uint8Array {
    const n = new TextEncoder().encode(name);
    const parts: Uint8Array[] = [];
    const rec = (size: number, fill: (v: DataView) => void) => {
      const b = new Uint8Array(size);
      fill(new DataView(b.buffer));
      parts.push(b);
      return b;
    };
    rec(30, (v) => {
      v.setUint32(0, 0x04034b50, true);
      v.setUint16(26, n.length, true);
    });
    parts.push(n, data);
    const cdOffset = 30 + n.length + data.length;
    rec(46, (v) => {
      v.setUint32(0, 0x02014b50, true);
      v.setUint32(20, 0xffffffff, true);
      v.setUint32(24, 0xffffffff, true);
      v.setUint16(28, n.length, true);
      v.setUint16(30, 28, true);
      v.setUint32(42, 0xffffffff, true);
    });
    parts.push(n);
    rec(28, (v) => {
      v.setUint16(0, 0x0001, true);
      v.setUint16(2, 24, true);
      v.setBigUint64(4, BigInt(data.length), true);
      v.setBigUint64(12, BigInt(data.length), true);
      v.setBigUint64(20, 0n, true);
    });
    const cdSize = 46 + n.length + 28;
    const z64 = cdOffset + cdSize;
    rec(56, (v) => {
      v.setUint32(0, 0x06064b50, true);
      v.setBigUint64(4, 44n, true);
      v.setBigUint64(24, 1n, true);
      v.setBigUint64(32, 1n, true);
      v.setBigUint64(40, BigInt(cdSize), true);
      v.setBigUint64(48, BigInt(cdOffset), true);
    });
    rec(20, (v) => {
      v.setUint32(0, 0x07064b50, true);
      v.setBigUint64(8, BigInt(z64), true);
      v.setUint32(16, 1, true);
    });
    rec(22, (v) => {
      v.setUint32(0, 0x06054b50, true);
      v.setUint16(8, 0xffff, true);
      v.setUint16(10, 0xffff, true);
      v.setUint32(12, 0xffffffff, true);
      v.setUint32(16, 0xffffffff, true);
    });
    return new Uint8Array(Buffer.concat(parts));
  }

  it('reads sizes and offsets from ZIP64 extra fields and end records', async () => {
    const file = zip64('k.npy', new Uint8Array(10).fill(7));
    expect(await readZipEntries(bufferSource(file), 'npz')).toEqual([
      { name: 'k.npy', method: 0, flags: 0, compressedSize: 10, uncompressedSize: 10, crc32: 0, localHeaderOffset: 0, dataOffset: 35 },
    ]);
  });

  it('refuses a ZIP64 entry whose data runs into the directory', async () => {
    const file = zip64('k.npy', new Uint8Array(10));
    new DataView(file.buffer).setBigUint64(35 + 10 + 46 + 5 + 4, 11n, true);
    new DataView(file.buffer).setBigUint64(35 + 10 + 46 + 5 + 12, 11n, true);
    const err = await readZipEntries(bufferSource(file), 'npz').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FormatError);
    expect((err as FormatError).message).toMatch(/runs into the central directory/);
  });
});

describe('pickle machine', () => {
  // pickle.dumps of the same dict in protocols 0, 1, 2, 4, 5 (CPython 3).
  const samples: Record<number, string> = {
    0: '286470300a56620a70310a284930310a4e4930300a7470320a7356730a70330a635f5f6275696c74696e5f5f0a7365740a70340a28286c70350a49330a617470360a5270370a7356660a70380a635f5f6275696c74696e5f5f0a66726f7a656e7365740a70390a28286c7031300a49340a61747031310a527031320a735662610a7031330a635f5f6275696c74696e5f5f0a6279746561727261790a7031340a28635f636f646563730a656e636f64650a7031350a28567a7a0a7031360a566c6174696e310a7031370a747031380a527031390a747032300a527032310a73566f640a7032320a63636f6c6c656374696f6e730a4f726465726564446963740a7032330a2874527032340a566b0a7032350a49310a737356610a7032360a286c7032370a49310a61492d320a6146322e350a615678e90a7032380a614c313138303539313632303731373431313330333432344c0a61732e',
    1: '7d7100285801000000627101284930310a4e4930300a7471025801000000737103635f5f6275696c74696e5f5f0a7365740a7104285d71054b03617471065271075801000000667108635f5f6275696c74696e5f5f0a66726f7a656e7365740a7109285d710a4b046174710b52710c58020000006261710d635f5f6275696c74696e5f5f0a6279746561727261790a710e28635f636f646563730a656e636f64650a710f2858020000007a7a711058060000006c6174696e31711174711252711374711452711558020000006f64711663636f6c6c656374696f6e730a4f726465726564446963740a71172952711858010000006b71194b0173580100000061711a5d711b284b014afeffffff474004000000000000580300000078c3a9711c4c313138303539313632303731373431313330333432344c0a65752e',
    2: '80027d7100285801000000627101884e898771025801000000737103635f5f6275696c74696e5f5f0a7365740a71045d71054b03618571065271075801000000667108635f5f6275696c74696e5f5f0a66726f7a656e7365740a71095d710a4b046185710b52710c58020000006261710d635f5f6275696c74696e5f5f0a6279746561727261790a710e635f636f646563730a656e636f64650a710f58020000007a7a711058060000006c6174696e31711186711252711385711452711558020000006f64711663636f6c6c656374696f6e730a4f726465726564446963740a71172952711858010000006b71194b0173580100000061711a5d711b284b014afeffffff474004000000000000580300000078c3a9711c8a0900000000000000004065752e',
    4: '800495a3000000000000007d94288c0161945d94284b014afeffffff4740040000000000008c0378c3a99443020001948a09000000000000000040658c016294884e8987948c0173948f94284b03908c016694284b0491948c026261948c086275696c74696e73948c0962797465617272617994939443027a7a94859452948c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b0173752e',
    5: '8005958d000000000000007d94288c0161945d94284b014afeffffff4740040000000000008c0378c3a99443020001948a09000000000000000040658c016294884e8987948c0173948f94284b03908c016694284b0491948c026261949602000000000000007a7a948c026f64948c0b636f6c6c656374696f6e73948c0b4f726465726564446963749493942952948c016b944b0173752e',
  };
  const get = (d: PDict, k: string): PickleValue => (d.entries.find(([key]) => key === k) as [PickleValue, PickleValue])[1];

  for (const [proto, hex] of Object.entries(samples)) {
    it(`walks protocol ${proto} symbolically`, () => {
      const { value, globals } = runPickle(new Uint8Array(Buffer.from(hex, 'hex')), 100, 'pytorch');
      expect(isNode(value, 'dict')).toBe(true);
      const d = value as PDict;
      const a = get(d, 'a');
      expect(isNode(a, 'list')).toBe(true);
      const items = (a as { items: PickleValue[] }).items.filter((x) => !isNode(x, 'bytes'));
      expect(items).toEqual([1, -2, 2.5, 'x\u00e9', 2n ** 70n]);
      expect((get(d, 'b') as { items: PickleValue[] }).items).toEqual([true, null, false]);
      const od = get(d, 'od');
      expect(isNode(od, 'call') && isNode(od.call, 'global') && od.call.global).toBe('collections.OrderedDict');
      for (const g of globals) expect(g.offset).toBeGreaterThanOrEqual(100);
      if (Number(proto) < 4) expect(globals.map((g) => g.name)).toContain('builtins.set');
    });
  }

  it('reports faults at the offset in the file', () => {
    const err = (() => {
      try {
        runPickle(Uint8Array.from([0x80, 0x02, 0xff]), 1000, 'pytorch');
      } catch (e) {
        return e as FormatError;
      }
    })();
    expect(err).toBeInstanceOf(FormatError);
    expect(err?.offset).toBe(1002);
  });

  it('keeps memo references shared and cycles finite', () => {
    // l = []; l.append(l)  ->  ]q\x00h\x00a.
    const { value } = runPickle(Uint8Array.from([0x80, 0x02, 0x5d, 0x71, 0x00, 0x68, 0x00, 0x61, 0x2e]), 0, 'pytorch');
    expect(isNode(value, 'list') && value.items[0]).toBe(value);
  });
});

function isRowMajor(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}
