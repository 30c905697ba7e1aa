/**
 * Acceptance 1: whatever goes in comes back bit for bit. Every valid fixture of every format is
 * committed and checked out through the real CLI, and compared by bytes, by sha256, and by the
 * reference `b3sum` against the whole-file hash the manifest records.
 */
import { existsSync, promises as fs, readFileSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import {
  b3sum,
  ckptJson,
  cleanupTempDirs,
  FIXTURES,
  HAVE_B3SUM,
  newRepo,
  randomF32,
  tempDir,
  validFixtures,
  type Listed,
} from './helpers.js';

interface ShownTensor {
  name: string;
  dtype: string;
  shape: number[];
  hash: string;
  chunks: number;
}
interface ShownView {
  name: string;
  dtype: string;
  shape: number[];
  segment: string;
  storageOffset?: number;
  stride?: number[];
}
interface Shown {
  id: string;
  files: { path: string; format: string; size: number; hash: string; tensors: ShownTensor[]; views?: ShownView[]; warnings?: string[] }[];
  shards?: Record<string, string>;
}

const fixtures = validFixtures();
let template: string;

beforeAll(async () => {
  template = await newRepo();
});
afterAll(cleanupTempDirs);

/** A fresh repository: a copy of one made by `ckpt init`, cheaper than running init each time. */
async function freshRepo(): Promise<string> {
  const dir = await tempDir();
  await fs.cp(path.join(template, '.ckpt'), path.join(dir, '.ckpt'), { recursive: true });
  return dir;
}

function isRowMajor(shape: number[], stride: number[] | undefined): boolean {
  if (!stride) return true;
  let expect = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) return false;
    expect *= shape[d];
  }
  return true;
}

/** Checks `ckpt show --json` against the fixture's listing written by the reference library. */
function checkListing(shown: Shown['files'][number], listing: Listed[], what: string): void {
  if (shown.format === 'pytorch') {
    // torch lists tensors as views; ckpt stores storages as segments and keeps the views beside them
    const views = shown.views ?? [];
    expect(views.map((v) => ({ name: v.name, dtype: v.dtype, shape: v.shape })), what).toEqual(
      listing.map((l) => ({ name: l.name, dtype: l.dtype, shape: l.shape })),
    );
    for (const l of listing) {
      const v = views.find((x) => x.name === l.name)!;
      const seg = shown.tensors.find((t) => t.name === v.segment);
      expect(seg, `${what}: segment ${v.segment} of view ${v.name}`).toBeDefined();
      const whole =
        (v.storageOffset ?? 0) === 0 && isRowMajor(v.shape, v.stride) && seg!.dtype === v.dtype &&
        seg!.shape.reduce((a, b) => a * b, 1) === v.shape.reduce((a, b) => a * b, 1);
      if (whole) expect(seg!.hash, `${what}: hash of ${l.name}`).toBe(l.blake3);
    }
    return;
  }
  if (shown.format === 'pytorch-legacy') {
    // stored opaque on purpose, and said so
    expect(shown.tensors, what).toEqual([]);
    expect(shown.warnings?.join(' '), what).toMatch(/opaque/i);
    return;
  }
  expect(shown.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, blake3: t.hash })), what).toEqual(listing);
}

const byFormat = new Map<string, typeof fixtures>();
for (const f of fixtures) byFormat.set(f.format, [...(byFormat.get(f.format) ?? []), f]);

describe('round trip of every valid fixture', () => {
  it('finds fixtures of several formats', () => {
    expect(byFormat.has('safetensors')).toBe(true);
    expect(fixtures.length).toBeGreaterThan(20);
  });

  // One commit per format folder keeps the CLI runs few; each file is still parsed, stored,
  // listed and checked out on its own, and every assertion names the file.
  describe.concurrent.each([...byFormat].map(([format, list]) => [format, list.length, list] as const))(
    '%s (%i files)',
    (format, _count, list) => {
      it('every file commits, lists its tensors as the reference library does, and checks out byte-identical', async () => {
        const dir = await freshRepo();
        await fs.mkdir(path.join(dir, format));
        for (const fx of list) await fs.copyFile(fx.file, path.join(dir, format, path.basename(fx.file)));

        const c = await ckptJson(dir, 'commit', format, '-m', `all ${format} fixtures`);
        expect(c.files).toHaveLength(list.length);

        const shown = await ckptJson<Shown>(dir, 'show', c.id);
        const out = await tempDir();
        const co = await ckptJson(dir, 'checkout', c.id, '-o', out);
        expect(co.files).toHaveLength(list.length);

        for (const fx of list) {
          const rel = `${format}/${path.basename(fx.file)}`;
          const original = readFileSync(fx.file);
          const f = shown.files.find((x) => x.path === rel);
          expect(f, rel).toBeDefined();
          expect(f!.size, rel).toBe(original.length);
          if (HAVE_B3SUM) expect(f!.hash, `${rel}: manifest hash vs b3sum`).toBe(b3sum(fx.file));
          if (fx.listing) checkListing(f!, JSON.parse(readFileSync(fx.listing, 'utf8')) as Listed[], rel);
          const back = readFileSync(path.join(out, rel));
          expect(back.length, rel).toBe(original.length);
          expect(back.equals(original), `${rel}: checked-out bytes differ`).toBe(true);
          if (HAVE_B3SUM) expect(b3sum(path.join(out, rel)), rel).toBe(f!.hash);
        }
      });
    },
  );

  it('a single file commits and checks out to a file path, and into the work tree without -o', async () => {
    const dir = await freshRepo();
    const src = path.join(FIXTURES, 'safetensors', 'with_metadata.safetensors');
    const original = readFileSync(src);
    await fs.copyFile(src, path.join(dir, 'model.safetensors'));
    const c = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'one file');
    const co = await ckptJson(dir, 'checkout', c.id, '-o', 'copy.safetensors');
    expect(co.files[0].output).toBe(path.join(dir, 'copy.safetensors'));
    expect(readFileSync(path.join(dir, 'copy.safetensors')).equals(original)).toBe(true);
    await fs.rm(path.join(dir, 'model.safetensors'));
    await ckptJson(dir, 'checkout', 'HEAD');
    expect(readFileSync(path.join(dir, 'model.safetensors')).equals(original)).toBe(true);
  });
});

/** A RAM filesystem other than the temp dir's, to check out across devices. */
const OTHER_FS = '/dev/shm';
const crossDevice = existsSync(OTHER_FS) && statSync(OTHER_FS).dev !== statSync(os.tmpdir()).dev;

describe('round trip to another filesystem', () => {
  it.skipIf(!crossDevice)('checkout -o onto another device writes the file whole (no EXDEV from the rename)', async () => {
    const dir = await freshRepo();
    const src = path.join(FIXTURES, 'safetensors', 'many_tensors.safetensors');
    await fs.copyFile(src, path.join(dir, 'm.safetensors'));
    const c = await ckptJson(dir, 'commit', 'm.safetensors', '-m', 'm');
    const other = await fs.mkdtemp(path.join(OTHER_FS, 'ckpt-e2e-'));
    try {
      await ckptJson(dir, 'checkout', c.id, '-o', path.join(other, 'm.safetensors'));
      expect(readFileSync(path.join(other, 'm.safetensors')).equals(readFileSync(src))).toBe(true);
      expect((await fs.readdir(other)).sort()).toEqual(['m.safetensors']);
    } finally {
      await fs.rm(other, { recursive: true, force: true });
    }
  });
});

describe('round trip with small chunks', () => {
  it('the large safetensors fixture spans more than 8 chunks of 64 KiB and comes back exact', async () => {
    const dir = await newRepo('--chunk-size', '65536');
    const src = path.join(FIXTURES, 'safetensors', 'large_tensor.safetensors');
    await fs.copyFile(src, path.join(dir, 'large.safetensors'));
    const c = await ckptJson(dir, 'commit', 'large.safetensors', '-m', 'large');
    const shown = await ckptJson<Shown>(dir, 'show', 'HEAD');
    const big = shown.files[0].tensors.reduce((a, b) => (b.chunks > a.chunks ? b : a));
    expect(big.chunks).toBeGreaterThan(8);
    expect(c.stats.chunks).toBeGreaterThan(8);
    checkListing(shown.files[0], JSON.parse(readFileSync(src.replace(/\.safetensors$/, '.json'), 'utf8')) as Listed[], 'large_tensor');
    await ckptJson(dir, 'checkout', 'HEAD', '-o', 'out.safetensors');
    expect(readFileSync(path.join(dir, 'out.safetensors')).equals(readFileSync(src))).toBe(true);
    if (HAVE_B3SUM) expect(b3sum(path.join(dir, 'out.safetensors'))).toBe(shown.files[0].hash);
  });
});

describe('round trip of a folder', () => {
  it('a sharded model with its index JSON, config and tokenizer: every file comes back', async () => {
    const dir = await newRepo('--chunk-size', '65536');
    const model = path.join(dir, 'model');
    await fs.mkdir(path.join(model, 'tokenizer'), { recursive: true });
    const t = (name: string, n: number, seed: number) => ({ name, dtype: 'F32', shape: [n / 8, 8], data: randomF32(seed, n) });
    const shard1 = writeSafetensors([t('embed.weight', 40_000, 1), t('layers.0.weight', 8_000, 2)]);
    const shard2 = writeSafetensors([t('layers.1.weight', 8_000, 3), t('head.weight', 40_000, 4)], { format: 'pt' });
    const names = {
      s1: 'model-00001-of-00002.safetensors',
      s2: 'model-00002-of-00002.safetensors',
    };
    const index = {
      metadata: { total_size: shard1.length + shard2.length },
      weight_map: {
        'embed.weight': names.s1,
        'layers.0.weight': names.s1,
        'layers.1.weight': names.s2,
        'head.weight': names.s2,
      },
    };
    const files: Record<string, Uint8Array | string> = {
      [names.s1]: shard1,
      [names.s2]: shard2,
      'model.safetensors.index.json': JSON.stringify(index, null, 2),
      'config.json': JSON.stringify({ hidden_size: 8, num_layers: 2 }),
      'tokenizer/tokenizer.json': JSON.stringify({ vocab: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`tok${i}`, i])) }),
      'README.md': '# a model\n',
    };
    for (const [p, data] of Object.entries(files)) await fs.writeFile(path.join(model, p), data);

    const c = await ckptJson(dir, 'commit', 'model', '-m', 'folder');
    expect(c.files.map((f: { path: string }) => f.path).sort()).toEqual(Object.keys(files).map((p) => `model/${p}`).sort());

    const shown = await ckptJson<Shown>(dir, 'show', 'HEAD');
    expect(shown.shards).toEqual({
      'embed.weight': `model/${names.s1}`,
      'layers.0.weight': `model/${names.s1}`,
      'layers.1.weight': `model/${names.s2}`,
      'head.weight': `model/${names.s2}`,
    });
    const tensorsOf = (p: string) => shown.files.find((f) => f.path === `model/${p}`)!.tensors.map((x) => x.name);
    expect(tensorsOf(names.s1)).toEqual(['embed.weight', 'layers.0.weight']);
    expect(tensorsOf(names.s2)).toEqual(['layers.1.weight', 'head.weight']);

    const out = await tempDir();
    const co = await ckptJson(dir, 'checkout', c.id, '-o', out);
    expect(co.files).toHaveLength(Object.keys(files).length);
    for (const [p, data] of Object.entries(files)) {
      const back = readFileSync(path.join(out, 'model', p));
      expect(back.equals(Buffer.from(data)), p).toBe(true);
      const entry = shown.files.find((f) => f.path === `model/${p}`)!;
      expect(entry.size).toBe(back.length);
      if (HAVE_B3SUM) expect(b3sum(path.join(out, 'model', p)), p).toBe(entry.hash);
    }

    // only some files of the commit
    const part = await tempDir();
    await ckptJson(dir, 'checkout', c.id, `model/${names.s2}`, '-o', part);
    expect(readFileSync(path.join(part, 'model', names.s2)).equals(Buffer.from(shard2))).toBe(true);
    await expect(fs.access(path.join(part, 'model', names.s1))).rejects.toThrow();
  });
});
