import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { bufferSource } from '../../src/core/byteSource.js';
import { FormatError } from '../../src/core/errors.js';
import { detectFormat, parseCheckpoint } from '../../src/formats/formatRegistry.js';
import { gguf } from '../../src/formats/gguf.js';
import { checkAgainstListing, type Listed } from './listing.js';

const dir = fileURLToPath(new URL('../../fixtures/gguf/', import.meta.url));
const badDir = join(dir, 'bad');

const good = readdirSync(dir).filter((f) => f.endsWith('.gguf'));

describe('gguf fixtures', () => {
  it('has fixtures', () => expect(good.length).toBeGreaterThanOrEqual(4));

  for (const file of good) {
    it(`parses ${file} as the Python listing says`, async () => {
      const bytes = new Uint8Array(readFileSync(join(dir, file)));
      const listing = JSON.parse(readFileSync(join(dir, file.replace(/\.gguf$/, '.json')), 'utf8')) as Listed[];
      // detected from the bytes, through the registry
      const layout = await parseCheckpoint(bufferSource(bytes));
      expect(layout.format).toBe('gguf');
      checkAgainstListing(layout, bytes, listing);
    });
  }
});

describe('gguf info', () => {
  const load = async (f: string) => gguf.parse(bufferSource(new Uint8Array(readFileSync(join(dir, f)))));

  it('reports metadata of every type and summarises long arrays', async () => {
    const layout = await load('tiny_v3.gguf');
    const info = layout.info as { version: number; alignment: number; tensorCount: number; metadata: Record<string, unknown> };
    expect(info.version).toBe(3);
    expect(info.alignment).toBe(32);
    expect(info.tensorCount).toBe(7);
    const m = info.metadata;
    expect(m['general.architecture']).toBe('llama');
    expect(m['llama.context_length']).toBe(128);
    expect(m['llama.rope.freq_base']).toBe(10000);
    expect(m['llama.attention.layer_norm_rms_epsilon']).toBe(1e-5);
    expect(m['test.u8']).toBe(200);
    expect(m['test.i8']).toBe(-5);
    expect(m['test.u16']).toBe(65000);
    expect(m['test.i16']).toBe(-30000);
    expect(m['test.i32']).toBe(-2000000000);
    expect(m['test.bool']).toBe(true);
    // 2^60 is not exact as a double, so it is kept as a decimal string
    expect(m['test.u64']).toBe((2n ** 60n).toString());
    expect(m['test.i64']).toBe(-(2 ** 40));
    expect(m['tokenizer.ggml.tokens']).toEqual({ type: 'string', length: 102 });
    expect(m['tokenizer.ggml.scores']).toEqual({ type: 'f32', length: 102 });
    expect(m['tokenizer.ggml.token_type']).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(m['test.nested']).toEqual([[1, 2], [3]]);
  });

  it('reads v2 and a 64-byte alignment', async () => {
    const layout = await load('align64_v2.gguf');
    expect(layout.info).toMatchObject({ version: 2, alignment: 64 });
    for (const s of layout.segments) if (s.kind === 'tensor') expect(s.offset % 64).toBe(0);
  });

  it('keeps bytes after the last tensor, and empty tensors', async () => {
    const layout = await load('odd_shapes_v3.gguf');
    const last = layout.segments[layout.segments.length - 1];
    expect(last.kind).toBe('bytes');
    const empty = layout.segments.find((s) => s.kind === 'tensor' && s.name === 'empty');
    expect(empty).toMatchObject({ length: 0, shape: [0, 4] });
  });

  it('stores a file without tensors as one bytes segment', async () => {
    const layout = await load('metadata_only_v3.gguf');
    expect(layout.segments).toEqual([{ kind: 'bytes', offset: 0, length: layout.size }]);
  });
});

describe('gguf detection', () => {
  it('goes by the magic, not the name', async () => {
    const bytes = new Uint8Array(readFileSync(join(dir, 'tiny_v3.gguf')));
    expect((await detectFormat(bufferSource(bytes))).name).toBe('gguf');
    expect(gguf.detect(bytes.subarray(0, 64), bytes.length)).toBe(true);
    expect(gguf.detect(new TextEncoder().encode('GGML....'), 8)).toBe(false);
    expect(gguf.detect(new TextEncoder().encode('GGUF'), 4)).toBe(false);
  });
});

describe('malformed gguf', () => {
  const faults = JSON.parse(readFileSync(join(badDir, 'faults.json'), 'utf8')) as Record<string, string>;

  it('has at least 12 malformed files, each listed', () => {
    const files = readdirSync(badDir).filter((f) => f !== 'faults.json');
    expect(files.length).toBeGreaterThanOrEqual(12);
    expect(files.sort()).toEqual(Object.keys(faults).sort());
  });

  for (const [file, pattern] of Object.entries(faults)) {
    it(`refuses ${file}`, async () => {
      const bytes = new Uint8Array(readFileSync(join(badDir, file)));
      const err = await gguf.parse(bufferSource(bytes)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FormatError);
      const fe = err as FormatError;
      expect(fe.message).toMatch(new RegExp(pattern));
      expect(fe.format).toBe('gguf');
      expect(fe.offset).toBeGreaterThanOrEqual(0);
      expect(fe.offset).toBeLessThan(bytes.length);
    });
  }
});
