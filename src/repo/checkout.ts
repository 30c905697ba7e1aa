/**
 * `ckpt checkout`: write a commit's files back, bit for bit. Chunks are read in order, verified
 * one by one, and the whole file is checked against its BLAKE3 before it is renamed into place,
 * so a failed checkout never leaves a half-written file where the user expects their model.
 */
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { createHasher } from '../core/blake3.js';
import { CkptError, CorruptObjectError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Manifest, ManifestTensorSegment, Tree } from '../core/objects.js';
import { checkTreePath, validateTree } from '../core/treePath.js';
import { encodeSafetensorsHeader } from '../formats/safetensors.js';
import { renameIntoPlace } from '../backend/atomicFile.js';
import { ChunkReader } from '../store/chunkReader.js';
import { assertNotPruned } from './assertNotPruned.js';
import type { Repository } from './repository.js';
import { resolveRevision } from './resolveRevision.js';

export interface CheckoutOptions {
  output?: string;
  tensors?: string;
  /** Only these tree paths. */
  paths?: string[];
  onProgress?: (done: number, total: number) => void;
  /** Brings chunks the store lacks (a partial clone) before anything is read. */
  fetchMissing?: (ids: ObjectId[]) => Promise<void>;
}

export interface CheckoutResult {
  commit: ObjectId;
  files: { path: string; output: string; size: number; hash: string }[];
  tensors?: number;
}

/**
 * Chunks go out in batches of at least this many bytes, one `writev` each, while the next batch
 * decodes: small chunks are gathered into one large write; 1 MiB chunks (the default) go one by
 * one. Larger batches were measured slower here: every chunk held for a batch is memory the
 * decoder cannot reuse, and fresh pages cost more than the extra system calls save.
 */
const WRITE_BATCH = 1024 * 1024;

/** Every byte of `bufs`, in order, at the file's current position (writev may stop short). */
async function writeAll(fh: FileHandle, bufs: Uint8Array[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    let n = (await fh.writev(rest)).bytesWritten;
    let i = 0;
    while (i < rest.length && n >= rest[i].length) n -= rest[i++].length;
    rest = rest.slice(i);
    if (n > 0) rest[0] = rest[0].subarray(n);
  }
}

/** Streams chunks into a temporary file, hashing as it goes; returns the file and its BLAKE3. */
async function writeChunks(
  reader: ChunkReader,
  ids: ObjectId[],
  tmp: string,
  prefix: Uint8Array | undefined,
  onBytes: (n: number) => void,
): Promise<string> {
  const hasher = createHasher();
  const fh = await fs.open(tmp, 'w');
  try {
    // one batch is written while the next is read and decoded; at most two are held
    let pending: Promise<void> = Promise.resolve();
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    const flush = async () => {
      const b = batch;
      batch = [];
      batchBytes = 0;
      await pending;
      pending = writeAll(fh, b);
      pending.catch(() => undefined);
    };
    const add = async (b: Uint8Array) => {
      hasher.update(b);
      batch.push(b);
      batchBytes += b.length;
      if (batchBytes >= WRITE_BATCH) await flush();
    };
    if (prefix) await add(prefix);
    for await (const chunk of reader.stream(ids)) {
      await add(chunk);
      onBytes(chunk.length);
    }
    await flush();
    await pending;
    await fh.sync();
  } finally {
    await fh.close();
  }
  return hasher.hex();
}

/**
 * Writes one stored file to `dest`, verified against its whole-file hash before it appears;
 * `tmp` is where it is written first (a scratch file of the store, renamed into place).
 */
export async function writeManifestFile(
  reader: ChunkReader,
  m: Manifest,
  manifestId: ObjectId,
  dest: string,
  tmp: string,
  onBytes: (n: number) => void = () => undefined,
): Promise<void> {
  try {
    const ids = m.segments.flatMap((s) => s.chunks.map((c) => c[0]));
    const hash = await writeChunks(reader, ids, tmp, undefined, onBytes);
    if (hash !== m.hash) throw new CorruptObjectError(manifestId, dest, `checked-out bytes hash to ${hash}, expected ${m.hash}`);
    await renameIntoPlace(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}

export async function checkout(repo: Repository, rev: string, opts: CheckoutOptions = {}): Promise<CheckoutResult> {
  const commitId = await resolveRevision(repo, rev);
  // gc must not remove packs under a running checkout
  const lock = await repo.store.lockShared('checkout');
  try {
    return await checkoutLocked(repo, rev, commitId, opts);
  } finally {
    await lock.release();
  }
}

async function checkoutLocked(repo: Repository, rev: string, commitId: ObjectId, opts: CheckoutOptions): Promise<CheckoutResult> {
  await assertNotPruned(repo, commitId);
  const commit = await repo.readCommit(commitId);
  // checked again here, naming the commit: nothing is written unless every path is safe
  const tree = validateTree<Tree>(await repo.store.meta.get<Tree>(commit.tree, 'tree'), commit.tree, commitId);
  let paths = Object.keys(tree.files).sort();
  if (opts.paths?.length) {
    const want = new Set(opts.paths.map((p) => repo.treePath(p)));
    paths = paths.filter((p) => want.has(p) || opts.paths!.includes(p));
    if (paths.length === 0) throw new CkptError('E_NOT_FOUND', `none of ${opts.paths.join(', ')} is in ${rev}`);
  }
  const manifests = new Map<string, Manifest>();
  for (const p of paths) manifests.set(p, await repo.readManifest(tree.files[p].manifest));
  if (opts.fetchMissing) {
    const index = await repo.store.reloadIndex();
    const match = opts.tensors ? picomatch(opts.tensors, { dot: true }) : undefined;
    const wanted = [...manifests.values()].flatMap((m) => m.segments.filter((s) => !match || (s.t === 'tensor' && match(s.name))));
    const missing = [...new Set(wanted.flatMap((s) => s.chunks.map((c) => c[0])))].filter((id) => !index.has(id));
    if (missing.length > 0) await opts.fetchMissing(missing);
  }
  const reader = await repo.store.reader(await repo.store.reloadIndex());
  try {
    if (opts.tensors) return { commit: commitId, ...(await exportTensors(reader, manifests, opts, await repo.store.scratchFile('export'))) };
    const total = paths.reduce((n, p) => n + manifests.get(p)!.size, 0);
    let done = 0;
    const files: CheckoutResult['files'] = [];
    for (const p of paths) {
      const m = manifests.get(p)!;
      const dest =
        opts.output === undefined
          ? await safeDest(repo.root, p, commitId)
          : paths.length === 1 && !/[/\\]$/.test(opts.output) && !(await isDir(opts.output)) // `-o out/`: a folder
            ? path.resolve(opts.output)
            : await safeDest(path.resolve(opts.output), p, commitId);
      await writeManifestFile(reader, m, tree.files[p].manifest, dest, await repo.store.scratchFile('checkout'), (n) => opts.onProgress?.((done += n), total));
      files.push({ path: p, output: dest, size: m.size, hash: m.hash });
    }
    return { commit: commitId, files };
  } finally {
    await reader.close();
  }
}

/**
 * Where tree path `p` goes under `base`, with every folder between them made or checked: a
 * folder that is a symlink (which a checkout never creates) or a file is refused, so a write
 * can never be steered outside `base`. The file itself is replaced by rename, which does not
 * follow a symlink either.
 */
async function safeDest(base: string, p: string, commit: ObjectId): Promise<string> {
  checkTreePath(p, undefined, commit);
  const parts = p.split('/');
  const dest = path.join(base, ...parts);
  const rel = path.relative(base, dest);
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) {
    throw new CkptError('E_CORRUPT', `commit ${commit}: entry ${JSON.stringify(p)} resolves outside ${base}`, { commit, entry: p });
  }
  // the target itself is the user's (it may be a symlink they made); below it, nothing is followed
  await fs.mkdir(base, { recursive: true });
  let dir = base;
  for (const c of parts.slice(0, -1)) {
    dir = path.join(dir, c);
    let st = await fs.lstat(dir).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
    if (!st) {
      await fs.mkdir(dir).catch((e: NodeJS.ErrnoException) => (e.code === 'EEXIST' ? undefined : Promise.reject(e)));
      st = await fs.lstat(dir);
    }
    if (st.isSymbolicLink()) {
      throw new CkptError('E_IO', `${dir} is a symlink; checkout of ${JSON.stringify(p)} does not follow it (remove it, or check out with -o)`, {
        path: dir,
        entry: p,
      });
    }
    if (!st.isDirectory()) throw new CkptError('E_IO', `${dir} is not a folder; cannot check out ${JSON.stringify(p)}`, { path: dir, entry: p });
  }
  const st = await fs.lstat(dest).catch(() => undefined);
  if (st?.isDirectory()) throw new CkptError('E_IO', `${dest} is a folder; cannot check out the file ${JSON.stringify(p)} over it`, { path: dest, entry: p });
  return dest;
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Writes the tensors matching a glob, from every file of the commit, as one safetensors file. */
async function exportTensors(
  reader: ChunkReader,
  manifests: Map<string, Manifest>,
  opts: CheckoutOptions,
  tmp: string,
): Promise<Omit<CheckoutResult, 'commit'>> {
  if (!opts.output) throw new UsageError('--tensors needs -o FILE (the safetensors file to write)');
  const match = picomatch(opts.tensors!, { dot: true });
  const picked: ManifestTensorSegment[] = [];
  const names = new Set<string>();
  for (const m of manifests.values()) {
    for (const s of m.segments) {
      if (s.t !== 'tensor' || !match(s.name)) continue;
      if (names.has(s.name)) throw new UsageError(`tensor ${s.name} is in several files; narrow the paths`);
      names.add(s.name);
      picked.push(s);
    }
  }
  if (picked.length === 0) throw new CkptError('E_NOT_FOUND', `no tensor matches ${opts.tensors}`, { glob: opts.tensors });
  const header = encodeSafetensorsHeader(picked.map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, length: s.len })));
  const dest = path.resolve(opts.output);
  const total = picked.reduce((n, s) => n + s.len, 0);
  let done = 0;
  try {
    const hash = await writeChunks(reader, picked.flatMap((s) => s.chunks.map((c) => c[0])), tmp, header, (n) => opts.onProgress?.((done += n), total));
    await renameIntoPlace(tmp, dest);
    return { files: [{ path: path.basename(dest), output: dest, size: header.length + total, hash }], tensors: picked.length };
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
