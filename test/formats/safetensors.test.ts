import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { blake3Hex } from '../../src/core/blake3.js';
import type { ByteSource } from '../../src/core/byteSource.js';
import { bufferSource } from '../../src/core/byteSource.js';
import { allDTypes, dtypeByName, tensorByteLength } from '../../src/core/dtypes.js';
import { CkptError, FormatError } from '../../src/core/errors.js';
import type { Layout, TensorSegment } from '../../src/core/layout.js';
import { assertLayoutCovers } from '../../src/core/layout.js';
import { detectFormat, parseCheckpoint } from '../../src/formats/formatRegistry.js';
import { encodeSafetensorsHeader, safetensors, writeSafetensors } from '../../src/formats/safetensors.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../fixtures/safetensors');
const badDir = join(root, 'bad');

interface Listed {
  name: string;
  dtype: string;
  shape: number[];
  blake3: string;
}

interface Fault {
  pattern: string;
  offset: number;
}

const validNames = readdirSync(root)
  .filter((f) => f.endsWith('.safetensors'))
  .map((f) => f.slice(0, -'.safetensors'.length))
  .sort();
const faults = JSON.parse(readFileSync(join(badDir, 'faults.json'), 'utf8')) as Record<string, Fault>;
const badNames = readdirSync(badDir)
  .filter((f) => f.endsWith('.safetensors'))
  .sort();

const tensorsOf = (l: Layout): TensorSegment[] => l.segments.filter((s): s is TensorSegment => s.kind === 'tensor');

/** A ByteSource that records every read, to show the parser reads only the header. */
function countingSource(buf: Uint8Array): { src: ByteSource; read: () => number } {
  const inner = bufferSource(buf);
  let total = 0;
  return {
    src: {
      size: inner.size,
      read(offset, length) {
        total += length;
        return inner.read(offset, length);
      },
    },
    read: () => total,
  };
}

async function parseError(bytes: Uint8Array): Promise<unknown> {
  try {
    await safetensors.parse(bufferSource(bytes));
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('safetensors fixtures', () => {
  it('has the valid fixtures the suite relies on', () => {
    expect(validNames).toEqual(
      expect.arrayContaining(['all_dtypes', 'large_tensor', 'many_tensors', 'scalar_and_empty', 'with_metadata']),
    );
    expect(badNames.length).toBeGreaterThanOrEqual(18);
    expect(Object.keys(faults).sort()).toEqual(badNames);
  });

  for (const name of validNames) {
    it(`parses ${name}`, async () => {
      const bytes = new Uint8Array(readFileSync(join(root, `${name}.safetensors`)));
      const listed = JSON.parse(readFileSync(join(root, `${name}.json`), 'utf8')) as Listed[];
      const counter = countingSource(bytes);
      const layout = await safetensors.parse(counter.src);

      expect(layout.format).toBe('safetensors');
      expect(layout.size).toBe(bytes.byteLength);
      assertLayoutCovers(layout);
      const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
      expect(layout.segments[0]).toEqual({ kind: 'bytes', offset: 0, length: 8 + n });
      expect(counter.read()).toBe(8 + n);

      const tensors = tensorsOf(layout);
      expect(layout.segments.length).toBe(1 + tensors.length);
      expect(
        tensors.map((t) => ({
          name: t.name,
          dtype: t.dtype,
          shape: t.shape,
          blake3: blake3Hex(bytes.subarray(t.offset, t.offset + t.length)),
        })),
      ).toEqual(listed);
      for (const t of tensors) {
        expect(t.length).toBe(tensorByteLength(dtypeByName(t.dtype)!, t.shape));
      }

      const joined = Buffer.concat(layout.segments.map((s) => bytes.subarray(s.offset, s.offset + s.length)));
      expect(joined.equals(bytes)).toBe(true);
    });
  }

  it('reports __metadata__ as info, with non-ASCII text intact', async () => {
    const layout = await safetensors.parse(bufferSource(readFileSync(join(root, 'with_metadata.safetensors'))));
    expect(layout.info).toEqual({ metadata: { format: 'pt', step: '1000', note: 'ünïcode ✓ and "quotes"' } });
    expect(tensorsOf(layout).map((t) => t.name)).toContain('norm.ß');
    const plain = await safetensors.parse(bufferSource(readFileSync(join(root, 'all_dtypes.safetensors'))));
    expect(plain.info).toBeUndefined();
  });

  it('keeps empty tensors as zero-length segments', async () => {
    const layout = await safetensors.parse(bufferSource(readFileSync(join(root, 'scalar_and_empty.safetensors'))));
    const byName = new Map(tensorsOf(layout).map((t) => [t.name, t]));
    expect(byName.get('scalar')).toMatchObject({ shape: [], length: 4 });
    expect(byName.get('empty')).toMatchObject({ shape: [0, 4], length: 0 });
    expect(byName.get('empty_cols')).toMatchObject({ shape: [3, 0], length: 0 });
  });

  it('orders segments by data offset, not header order', async () => {
    const layout = await safetensors.parse(bufferSource(readFileSync(join(root, 'shuffled_header.safetensors'))));
    expect(tensorsOf(layout).map((t) => t.name)).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('malformed safetensors', () => {
  for (const file of badNames) {
    it(`rejects ${file}`, async () => {
      const fault = faults[file];
      expect(fault, `${file} has no entry in faults.json`).toBeDefined();
      const bytes = new Uint8Array(readFileSync(join(badDir, file)));
      const err = await parseError(bytes);
      expect(err).toBeInstanceOf(FormatError);
      const fe = err as FormatError;
      expect(fe.code).toBe('E_FORMAT');
      expect(fe.format).toBe('safetensors');
      expect(fe.message).toMatch(new RegExp(fault.pattern, 'i'));
      expect(fe.offset).toBe(fault.offset);
      expect(fe.message).toContain(`at offset ${fault.offset}:`);
    });
  }

  it('names the file once the caller knows it', async () => {
    const err = (await parseError(new Uint8Array(readFileSync(join(badDir, 'gap.safetensors'))))) as FormatError;
    expect(err.inFile('ckpts/gap.safetensors').message).toMatch(/^ckpts\/gap\.safetensors: invalid safetensors at offset/);
  });

  it('gives byte offsets, not character offsets, after multi-byte UTF-8', async () => {
    const header = '{"é€":{"dtype":"F17","shape":[],"data_offsets":[0,4]}}';
    const json = new TextEncoder().encode(header);
    const file = new Uint8Array(8 + json.byteLength + 4);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.byteLength), true);
    file.set(json, 8);
    const err = (await parseError(file)) as FormatError;
    expect(err).toBeInstanceOf(FormatError);
    expect(err.offset).toBe(8 + Buffer.from(header.slice(0, header.indexOf('"F17"'))).byteLength);
  });

  it('keeps a metadata key named __proto__ as data', async () => {
    const header = new TextEncoder().encode('{"__metadata__":{"__proto__":"x"}}');
    const raw = new Uint8Array(8 + header.byteLength);
    new DataView(raw.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    raw.set(header, 8);
    const md2 = ((await safetensors.parse(bufferSource(raw))).info as { metadata: Record<string, string> }).metadata;
    expect(Object.getOwnPropertyDescriptor(md2, '__proto__')?.value).toBe('x');
  });

  it('accepts an explicit null __metadata__, as the reference reader does', async () => {
    const header = new TextEncoder().encode('{"__metadata__":null,"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}');
    const file = new Uint8Array(8 + header.byteLength + 2);
    new DataView(file.buffer).setBigUint64(0, BigInt(header.byteLength), true);
    file.set(header, 8);
    const layout = await safetensors.parse(bufferSource(file));
    expect(layout.info).toBeUndefined();
    expect(tensorsOf(layout).map((t) => t.name)).toEqual(['a']);
  });
});

describe('safetensors header JSON', () => {
  const withHeader = (header: string, dataLength: number): Uint8Array => {
    const json = new TextEncoder().encode(header);
    const file = new Uint8Array(8 + json.byteLength + dataLength);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.byteLength), true);
    file.set(json, 8);
    return file;
  };

  it('decodes escapes in names and allows any JSON whitespace', async () => {
    const file = withHeader(
      '\t{ "a\\u00e9\\n\\"" :\r\n { "shape" : [ 2 ] , "dtype" : "U8" , "data_offsets" : [ 0 , 2 ] } }\n  ',
      2,
    );
    const layout = await safetensors.parse(bufferSource(file));
    expect(tensorsOf(layout).map((t) => t.name)).toEqual(['a\u00e9\n"']);
  });

  it('rejects 1.0 as a dimension and integers past 2^53, which JSON.parse would accept', async () => {
    for (const shape of ['[1.0]', '[1e0]', '[9007199254740993]']) {
      const err = await parseError(withHeader(`{"a":{"dtype":"U8","shape":${shape},"data_offsets":[0,1]}}`, 1));
      expect(err, shape).toBeInstanceOf(FormatError);
    }
  });

  it('fails cleanly on deep nesting instead of overflowing the stack', async () => {
    const err = await parseError(withHeader(`{"a":${'['.repeat(100_000)}`, 0));
    expect(err).toBeInstanceOf(FormatError);
    expect((err as Error).message).toMatch(/nested/);
  });

  it('meets only FormatError on mutated files (never a crash or another error)', async () => {
    let x = 12345;
    const next = (n: number) => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x % n;
    };
    for (const name of ['scalar_and_empty', 'with_metadata', 'all_dtypes', 'shuffled_header']) {
      const base = new Uint8Array(readFileSync(join(root, `${name}.safetensors`)));
      const n = Number(new DataView(base.buffer, base.byteOffset, 8).getBigUint64(0, true));
      for (let i = 0; i < 150; i++) {
        const m = base.slice(0, i % 10 === 0 ? next(base.byteLength) : base.byteLength);
        for (let k = 0; k <= next(3); k++) {
          if (m.byteLength > 0) m[next(Math.min(m.byteLength, 8 + n))] = next(256);
        }
        const err = await parseError(m);
        if (err === undefined) {
          assertLayoutCovers(await safetensors.parse(bufferSource(m)));
        } else {
          expect(err).toBeInstanceOf(FormatError);
          const off = (err as FormatError).offset;
          expect(Number.isSafeInteger(off) && off >= 0).toBe(true);
        }
      }
    }
  });
});

describe('safetensors detection', () => {
  it('detects by content, whatever the file is called', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckpt-st-'));
    try {
      for (const name of validNames) {
        const renamed = join(dir, `${name}.bin`);
        writeFileSync(renamed, readFileSync(join(root, `${name}.safetensors`)));
        const f = await detectFormat(bufferSource(new Uint8Array(readFileSync(renamed))));
        expect(f.name, name).toBe('safetensors');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('does not claim random bytes, short files or text', async () => {
    // A fixed xorshift stream: deterministic "random" bytes.
    let x = 0x9e3779b9;
    const random = new Uint8Array(4096).map(() => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return x & 0xff;
    });
    expect((await detectFormat(bufferSource(random))).name).toBe('opaque');
    expect((await detectFormat(bufferSource(new Uint8Array([2, 0, 0, 0]))))).toMatchObject({ name: 'opaque' });
    expect((await detectFormat(bufferSource(new TextEncoder().encode('{"hello": "world"}\n')))).name).toBe('opaque');
    // A length prefix that points past the end is not safetensors, even with a '{' after it.
    const lying = new Uint8Array(64);
    new DataView(lying.buffer).setBigUint64(0, 1000n, true);
    lying[8] = 0x7b;
    expect(safetensors.detect(lying, lying.byteLength)).toBe(false);
  });

  it('parses through the registry, which checks coverage', async () => {
    const layout = await parseCheckpoint(bufferSource(readFileSync(join(root, 'many_tensors.safetensors'))));
    expect(layout.format).toBe('safetensors');
    expect(tensorsOf(layout)).toHaveLength(1000);
  });
});

describe('writing safetensors', () => {
  const stDTypes = allDTypes().filter((d) => d.kind !== 'quant');

  for (const d of stDTypes) {
    it(`round-trips ${d.name}`, async () => {
      const shape = [2, 4];
      const len = tensorByteLength(d, shape)!;
      const data = new Uint8Array(len).map((_, i) => (i * 37 + d.bits) & 0xff);
      const tensors = [
        { name: 'x', dtype: d.name, shape, data },
        { name: 'scalar', dtype: d.name, shape: d.bits % 8 === 0 ? [] : [8], data: new Uint8Array(d.bits % 8 === 0 ? d.bits / 8 : d.bits) },
        { name: 'empty', dtype: d.name, shape: [0, 3], data: new Uint8Array(0) },
      ];
      const file = writeSafetensors(tensors, { dtype: d.name });
      const layout = await safetensors.parse(bufferSource(file));
      assertLayoutCovers(layout);
      expect(layout.info).toEqual({ metadata: { dtype: d.name } });
      const segs = tensorsOf(layout);
      expect(segs.map((s) => [s.name, s.dtype, s.shape])).toEqual(tensors.map((t) => [t.name, t.dtype, t.shape]));
      segs.forEach((s, i) => expect(file.subarray(s.offset, s.offset + s.length)).toEqual(tensors[i].data));
    });
  }

  it('pads the header to a multiple of 8 with spaces', () => {
    for (let k = 0; k < 12; k++) {
      const name = 'w'.repeat(k);
      const header = encodeSafetensorsHeader(k === 0 ? [] : [{ name, dtype: 'F32', shape: [k], length: 4 * k }]);
      const n = Number(new DataView(header.buffer, header.byteOffset, 8).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      expect(header.byteLength).toBe(8 + n);
      const text = new TextDecoder().decode(header.subarray(8));
      expect(text).toMatch(/^\{.*\} *$/);
    }
  });

  it('writes __metadata__ first and offsets in the given order', () => {
    const header = encodeSafetensorsHeader(
      [
        { name: 'b', dtype: 'F16', shape: [2], length: 4 },
        { name: 'a', dtype: 'U8', shape: [3], length: 3 },
      ],
      { k: 'v' },
    );
    expect(new TextDecoder().decode(header.subarray(8)).trimEnd()).toBe(
      '{"__metadata__":{"k":"v"},"b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},' +
        '"a":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}',
    );
  });

  it('refuses bad input with typed errors', () => {
    const bad = (f: () => unknown, re: RegExp) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CkptError);
      expect((err as CkptError).code).toBe('E_USAGE');
      expect((err as Error).message).toMatch(re);
    };
    bad(() => writeSafetensors([{ name: 'a', dtype: 'F17', shape: [1], data: new Uint8Array(4) }]), /unknown safetensors dtype/);
    bad(() => writeSafetensors([{ name: 'a', dtype: 'Q4_0', shape: [32], data: new Uint8Array(18) }]), /unknown safetensors dtype/);
    bad(() => writeSafetensors([{ name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array(4) }]), /needs 8 bytes, got 4/);
    bad(() => writeSafetensors([{ name: 'a', dtype: 'F32', shape: [-1], data: new Uint8Array(0) }]), /invalid shape/);
    bad(() => writeSafetensors([{ name: 'a', dtype: 'F4', shape: [3], data: new Uint8Array(2) }]), /invalid shape/);
    bad(
      () =>
        writeSafetensors([
          { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
          { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
        ]),
      /duplicate/,
    );
    bad(() => writeSafetensors([{ name: '__metadata__', dtype: 'U8', shape: [1], data: new Uint8Array(1) }]), /__metadata__/);
  });

  it('re-encodes a reference-style fixture byte for byte', async () => {
    const bytes = new Uint8Array(readFileSync(join(root, 'all_dtypes.safetensors')));
    const layout = await safetensors.parse(bufferSource(bytes));
    const again = writeSafetensors(
      tensorsOf(layout).map((t) => ({ ...t, data: bytes.subarray(t.offset, t.offset + t.length) })),
    );
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
  });
});
