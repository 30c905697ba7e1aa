/**
 * `ckpt diff`: compares two model states, each a commit, checkpoint files not committed, or the
 * work tree's copies of a commit's files.
 *
 * The cost follows the change. A commit's side is its manifests: chunk ids and each chunk's sum
 * of squares. diffStates pairs tensors from those alone. Then only the chunk pairs whose ids
 * differ are read and streamed through TensorDeltaStats; an equal chunk adds its stored sum of
 * squares unread. A file not committed has no store, so it is read once to cut and hash its
 * chunks as commit would (and sum their squares), and its differing chunks are read again from
 * the file by offset.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { blake3Hex, createHasher } from '../core/blake3.js';
import { CkptError, NotFoundError, UsageError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import type { ChunkRef, Manifest } from '../core/objects.js';
import { fixedChunks } from '../chunking/fixedChunks.js';
import { decodedElementBytes } from '../diff/elementDecoder.js';
import { summarizeDiff, type DiffResult, type SummaryOptions } from '../diff/diffSummary.js';
import { diffStates, type ChangedTensor, type FileView, type StateView, type TensorInfo } from '../diff/stateDiff.js';
import { chunkSumSquares, TensorDeltaStats, type TensorStats } from '../diff/tensorDeltaStats.js';
import type { ChunkReader } from '../store/chunkReader.js';
import { SequentialReader } from '../store/sequentialReader.js';
import { DEFAULT_CHUNK_SIZE } from '../store/storeConfig.js';
import { readLayout } from './ingestFile.js';
import type { Repository } from './repository.js';
import { resolveRevision } from './resolveRevision.js';

/** What one side of a diff was. `files` are the paths the diff names them by. */
export type DiffSide =
  | { kind: 'commit'; rev: string; id: ObjectId }
  | { kind: 'files'; path: string; files: string[] }
  | { kind: 'worktree'; files: string[] };

export interface DiffReport extends DiffResult {
  a: DiffSide;
  b: DiffSide;
  /** Chunks read for the statistics (both sides) and their bytes: what the diff cost. */
  read: { chunks: number; bytes: number };
}

export interface DiffOptions extends SummaryOptions {
  /** Globs on tensor names (picomatch): compare only the tensors that match one. */
  tensors?: string | string[];
  /** Element statistics of changed tensors (default true); false reads no tensor data of a commit. */
  stats?: boolean;
  /** Where relative paths start (default: the process's working directory). */
  cwd?: string;
  /** Reads the commits' chunks; by default one of the repository's, closed at the end. */
  reader?: ChunkReader;
  onProgress?: (phase: 'hash' | 'read', done: number, total: number) => void;
}

/** Where a tensor's chunks can be read, and what is known of them without reading. */
interface TensorSource {
  info: TensorInfo;
  sumsq?: number[];
  /** For a file not committed: the file, and each chunk's offset in it. */
  file?: string;
  offsets?: number[];
}

interface LoadedSide {
  side: DiffSide;
  view: StateView;
  /** By `${file}\0${tensor name}`. */
  sources: Map<string, TensorSource>;
  chunkSize: number | undefined;
}

const key = (file: string, name: string) => `${file}\0${name}`;

function tensorsOf(m: Manifest): { info: TensorInfo; sumsq?: number[] }[] {
  return m.segments.flatMap((s) =>
    s.t === 'tensor' ? [{ info: { name: s.name, dtype: s.dtype, shape: s.shape, len: s.len, chunks: s.chunks }, sumsq: s.sumsq }] : [],
  );
}

async function loadCommit(repo: Repository, rev: string, id: ObjectId): Promise<LoadedSide> {
  const commit = await repo.readCommit(id);
  const tree = await repo.readTree(commit.tree);
  const files: Record<string, FileView> = {};
  const sources = new Map<string, TensorSource>();
  let chunkSize: number | undefined;
  for (const [p, e] of Object.entries(tree.files)) {
    const m = await repo.readManifest(e.manifest);
    chunkSize ??= m.chunkSize;
    const tensors = tensorsOf(m);
    files[p] = { format: m.format, size: m.size, hash: m.hash, tensors: tensors.map((t) => t.info) };
    for (const t of tensors) sources.set(key(p, t.info.name), t);
  }
  return {
    side: { kind: 'commit', rev, id },
    view: { files, meta: { ...commit.meta, message: commit.message, ...(commit.code ? { code: commit.code } : {}) } },
    sources,
    chunkSize,
  };
}

/**
 * Cuts and hashes a file not committed the way commit would, without storing anything: chunk
 * ids, sums of squares, and where each chunk sits in the file.
 */
async function scanFile(
  file: string,
  chunkSize: number,
  progress: (bytes: number) => void,
): Promise<{ view: FileView; sources: TensorSource[] }> {
  const layout = await readLayout(file);
  const fh = await fs.open(file, 'r');
  try {
    const fileHash = createHasher();
    const reader = new SequentialReader(fh, layout.size, (b) => {
      fileHash.update(b);
      progress(b.length);
    });
    const sources: TensorSource[] = [];
    for (const s of layout.segments) {
      if (s.kind === 'bytes') {
        for (let left = s.length; left > 0; ) left -= (await reader.take(Math.min(left, chunkSize))).length;
        continue;
      }
      const size = decodedElementBytes(s.dtype);
      const sumsq = size !== undefined && s.length % size === 0 ? ([] as number[]) : undefined;
      const chunks: ChunkRef[] = [];
      const offsets: number[] = [];
      for (const c of fixedChunks(s.offset, s.length, chunkSize)) {
        const bytes = await reader.take(c.length);
        chunks.push([objectId('chunk', bytes), bytes.length]);
        offsets.push(c.offset);
        sumsq?.push(chunkSumSquares(bytes, s.dtype));
      }
      const info = { name: s.name, dtype: s.dtype, shape: s.shape, len: s.length, chunks };
      sources.push({ info, file, offsets, ...(sumsq ? { sumsq } : {}) });
    }
    const hash = layout.size === 0 ? blake3Hex(new Uint8Array(0)) : fileHash.hex();
    return { view: { format: layout.format, size: layout.size, hash, tensors: sources.map((t) => t.info) }, sources };
  } finally {
    await fh.close();
  }
}

async function loadFiles(
  side: DiffSide,
  files: { name: string; abs: string }[],
  chunkSize: number,
  onProgress: DiffOptions['onProgress'],
): Promise<LoadedSide> {
  let total = 0;
  for (const f of files) total += (await fs.stat(f.abs)).size;
  let done = 0;
  const view: StateView = { files: {} };
  const sources = new Map<string, TensorSource>();
  for (const f of files) {
    const scanned = await scanFile(f.abs, chunkSize, (n) => onProgress?.('hash', (done += n), total));
    view.files[f.name] = scanned.view;
    for (const t of scanned.sources) sources.set(key(f.name, t.info.name), t);
  }
  return { side, view, sources, chunkSize };
}

/** Every regular file at or below `p`, hidden ones skipped (as commit collects them). */
async function listFiles(p: string): Promise<string[]> {
  const st = await fs.stat(p);
  if (!st.isDirectory()) return st.isFile() ? [p] : [];
  const out: string[] = [];
  for (const e of (await fs.readdir(p)).sort()) if (!e.startsWith('.')) out.push(...(await listFiles(path.join(p, e))));
  return out;
}

async function exists(p: string): Promise<boolean> {
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

type Spec = { kind: 'commit'; rev: string; id: ObjectId } | { kind: 'path'; spec: string; abs: string };

/**
 * A revision, or a path not committed. A name that is both is refused rather than guessed at:
 * `./name` always means the path.
 */
async function classify(repo: Repository | undefined, spec: string, cwd: string): Promise<Spec> {
  const abs = path.resolve(cwd, spec);
  const isPath = await exists(abs);
  const looksLikePath = spec.startsWith('./') || spec.startsWith('../') || path.isAbsolute(spec);
  if (repo && !looksLikePath) {
    try {
      const id = await resolveRevision(repo, spec);
      if (isPath) {
        throw new CkptError('E_AMBIGUOUS', `${spec} is both a revision and a file; write ./${spec} for the file`, { rev: spec });
      }
      return { kind: 'commit', rev: spec, id };
    } catch (e) {
      const err = e as CkptError;
      if (!isPath && err.message === `not found: revision ${spec}`) {
        throw new NotFoundError(`${spec} is neither a revision nor a file`, { rev: spec });
      }
      if (!isPath || (err.code !== 'E_NOT_FOUND' && err.code !== 'E_USAGE')) throw e;
    }
  }
  if (!isPath) {
    if (!repo) throw new NotFoundError(`${spec}: no such file (and no repository to find a revision in)`, { path: spec });
    throw new NotFoundError(`${spec} is neither a revision nor a file`, { rev: spec });
  }
  return { kind: 'path', spec, abs };
}

async function loadSpec(
  repo: Repository | undefined,
  spec: Spec,
  cwd: string,
  chunkSize: number,
  onProgress: DiffOptions['onProgress'],
): Promise<LoadedSide> {
  if (spec.kind === 'commit') return loadCommit(repo!, spec.rev, spec.id);
  const found = await listFiles(spec.abs);
  if (found.length === 0) throw new UsageError(`${spec.spec}: no files to compare`, { path: spec.spec });
  // Named as commit names them, so a file pairs with its committed copy.
  const name = (f: string) => (repo ? repo.treePath(f) : path.relative(cwd, f).split(path.sep).join('/'));
  const files = found.map((f) => ({ name: name(f), abs: f }));
  return loadFiles({ kind: 'files', path: spec.spec, files: files.map((f) => f.name) }, files, chunkSize, onProgress);
}

/** The work tree's copies of a commit's files; a file missing there is a file removed. */
async function loadWorkTree(repo: Repository, a: LoadedSide, chunkSize: number, onProgress: DiffOptions['onProgress']): Promise<LoadedSide> {
  const files: { name: string; abs: string }[] = [];
  for (const name of Object.keys(a.view.files).sort()) {
    const abs = path.join(repo.root, ...name.split('/'));
    if (await exists(abs)) files.push({ name, abs });
  }
  return loadFiles({ kind: 'worktree', files: files.map((f) => f.name) }, files, chunkSize, onProgress);
}

/** A chunk to read: from the store by id, or from a file not committed by offset. */
interface ChunkLoc {
  id: ObjectId;
  len: number;
  file?: string;
  offset?: number;
}

function locOf(src: TensorSource, i: number): ChunkLoc {
  const [id, len] = src.info.chunks[i];
  return src.file ? { id, len, file: src.file, offset: src.offsets![i] } : { id, len };
}

/** Bytes read ahead from files not committed: both sides together stay within twice this. */
const FILE_READ_AHEAD = 64 * 1024 * 1024;

/**
 * The chunks in order, read ahead within a window. A file not committed may change while diff
 * runs (training writes checkpoints in place), so each chunk is checked against the id it had
 * when the file was hashed.
 */
async function* readChunks(locs: ChunkLoc[], reader: () => Promise<ChunkReader>): AsyncGenerator<Uint8Array> {
  if (locs.length === 0) return;
  if (!locs[0].file) {
    yield* (await reader()).stream(locs.map((l) => l.id));
    return;
  }
  const handles = new Map<string, Promise<fs.FileHandle>>();
  const readOne = async (l: ChunkLoc): Promise<Uint8Array> => {
    let h = handles.get(l.file!);
    if (!h) handles.set(l.file!, (h = fs.open(l.file!, 'r')));
    const buf = Buffer.allocUnsafe(l.len);
    for (let done = 0; done < l.len; ) {
      const { bytesRead } = await (await h).read(buf, done, l.len - done, l.offset! + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    if (objectId('chunk', buf) !== l.id) {
      throw new CkptError('E_IO', `${l.file} changed while diff read it (at offset ${l.offset})`, { path: l.file, offset: l.offset });
    }
    return buf;
  };
  const inflight: { len: number; p: Promise<Uint8Array> }[] = [];
  let inflightBytes = 0;
  let next = 0;
  try {
    while (next < locs.length || inflight.length > 0) {
      while (next < locs.length && (inflight.length === 0 || inflightBytes + locs[next].len <= FILE_READ_AHEAD)) {
        const l = locs[next++];
        const p = readOne(l);
        p.catch(() => undefined);
        inflight.push({ len: l.len, p });
        inflightBytes += l.len;
      }
      const head = inflight.shift()!;
      inflightBytes -= head.len;
      yield await head.p;
    }
  } finally {
    await Promise.allSettled(inflight.map((x) => x.p));
    for (const h of handles.values()) await h.then((x) => x.close()).catch(() => undefined);
  }
}

/**
 * What reading a changed tensor takes, in the order the chunks stream: pairs of differing chunks;
 * A's copy of an equal chunk whose sum of squares neither manifest has (made before sums were
 * stored); or both tensors whole when they were cut at other boundaries.
 */
type Step =
  | { kind: 'pair'; acc: TensorDeltaStats }
  | { kind: 'equalRead'; acc: TensorDeltaStats; dtype: string }
  | { kind: 'whole'; acc: TensorDeltaStats; chunksA: number; chunksB: number }
  | { kind: 'done'; acc: TensorDeltaStats; tensor: ChangedTensor<TensorStats> };

function planTensor(ch: ChangedTensor<TensorStats>, sa: TensorSource, sb: TensorSource, steps: Step[], locsA: ChunkLoc[], locsB: ChunkLoc[]): void {
  const acc = new TensorDeltaStats(ch.dtype);
  const size = decodedElementBytes(ch.dtype);
  // A length that is not whole elements has no element values to compare (nor stored sums).
  if (size !== undefined && ch.bytes % size !== 0) return;
  if (ch.changedChunks === null) {
    sa.info.chunks.forEach((_, i) => locsA.push(locOf(sa, i)));
    sb.info.chunks.forEach((_, i) => locsB.push(locOf(sb, i)));
    steps.push({ kind: 'whole', acc, chunksA: sa.info.chunks.length, chunksB: sb.info.chunks.length });
  } else {
    const differing = new Set(ch.changedChunks);
    sa.info.chunks.forEach(([, len], i) => {
      if (differing.has(i)) {
        locsA.push(locOf(sa, i));
        locsB.push(locOf(sb, i));
        steps.push({ kind: 'pair', acc });
        return;
      }
      if (!acc.numeric) return acc.addEqual(len);
      // Equal ids are equal bytes, so either side's sum serves.
      const sum = sa.sumsq?.[i] ?? sb.sumsq?.[i];
      if (sum !== undefined) return acc.addEqual(len, sum);
      locsA.push(locOf(sa, i));
      steps.push({ kind: 'equalRead', acc, dtype: ch.dtype });
    });
  }
  steps.push({ kind: 'done', acc, tensor: ch });
}

async function computeStats(
  changed: ChangedTensor<TensorStats>[],
  a: LoadedSide,
  b: LoadedSide,
  reader: () => Promise<ChunkReader>,
  onProgress: DiffOptions['onProgress'],
): Promise<DiffReport['read']> {
  const steps: Step[] = [];
  const locsA: ChunkLoc[] = [];
  const locsB: ChunkLoc[] = [];
  for (const ch of changed) {
    const sa = a.sources.get(key(ch.fileA ?? ch.file, ch.name));
    const sb = b.sources.get(key(ch.file, ch.name));
    if (!sa || !sb) throw new CkptError('E_USAGE', `internal: no source for changed tensor ${ch.name}`);
    planTensor(ch, sa, sb, steps, locsA, locsB);
  }
  const total = [...locsA, ...locsB].reduce((n, l) => n + l.len, 0);
  const read = { chunks: 0, bytes: 0 };
  const streamA = readChunks(locsA, reader);
  const streamB = readChunks(locsB, reader);
  const pull = async (s: AsyncGenerator<Uint8Array>): Promise<Uint8Array> => {
    const r = await s.next();
    if (r.done) throw new CkptError('E_USAGE', 'internal: a chunk stream ended early');
    read.chunks++;
    read.bytes += r.value.byteLength;
    onProgress?.('read', read.bytes, total);
    return r.value;
  };
  try {
    for (const step of steps) {
      if (step.kind === 'pair') {
        const [x, y] = await Promise.all([pull(streamA), pull(streamB)]);
        step.acc.addPair(x, y);
      } else if (step.kind === 'equalRead') {
        const x = await pull(streamA);
        step.acc.addEqual(x.byteLength, chunkSumSquares(x, step.dtype));
      } else if (step.kind === 'whole') {
        let x: Uint8Array = new Uint8Array(0);
        let y: Uint8Array = new Uint8Array(0);
        let leftA = step.chunksA;
        let leftB = step.chunksB;
        for (;;) {
          if (x.byteLength === 0 && leftA > 0) (x = await pull(streamA)), leftA--;
          if (y.byteLength === 0 && leftB > 0) (y = await pull(streamB)), leftB--;
          const n = Math.min(x.byteLength, y.byteLength);
          if (n === 0) break;
          step.acc.addPair(x.subarray(0, n), y.subarray(0, n));
          x = x.subarray(n);
          y = y.subarray(n);
        }
      } else {
        step.tensor.stats = step.acc.finalize();
      }
    }
  } finally {
    await streamA.return(undefined);
    await streamB.return(undefined);
  }
  return read;
}

/** Field order of the JSON document: the sides first, the cost last. */
function report(a: DiffSide, b: DiffSide, d: DiffResult, read: DiffReport['read']): DiffReport {
  const { identical, filter, files, tensors, meta, summary } = d;
  return { a, b, identical, filter, files, tensors, meta, summary, read };
}

/**
 * Diffs A against B; each is a revision, or a path (file or folder) of checkpoint files not
 * committed. Without B, A against the work tree's copies of A's files. `repo` may be undefined
 * when both are paths.
 */
export async function diff(repo: Repository | undefined, specA: string, specB?: string, opts: DiffOptions = {}): Promise<DiffReport> {
  const cwd = opts.cwd ?? process.cwd();
  let ca = await classify(repo, specA, cwd);
  let cb = specB === undefined ? undefined : await classify(repo, specB, cwd);
  if (!cb && ca.kind === 'path') {
    // One path alone: it against HEAD, as `ckpt diff HEAD PATH`.
    if (!repo) throw new UsageError('diff of one path needs a repository (its HEAD is the other side)');
    cb = ca;
    ca = await classify(repo, 'HEAD', cwd);
  }
  const configured = repo?.store.config.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const a = await loadSpec(repo, ca, cwd, configured, opts.onProgress);
  // Files not committed are cut like the commit they are compared with, so their chunks pair.
  const chunkSize = a.chunkSize ?? configured;
  const b = cb ? await loadSpec(repo, cb, cwd, chunkSize, opts.onProgress) : await loadWorkTree(repo!, a, chunkSize, opts.onProgress);

  const d = diffStates<TensorStats>(a.view, b.view, { tensors: opts.tensors });
  let read: DiffReport['read'] = { chunks: 0, bytes: 0 };
  if (opts.stats !== false && d.tensors.changed.length > 0) {
    // Both sides' streams share one reader, opened when a side first needs it.
    let own: Promise<ChunkReader> | undefined;
    const reader = (): Promise<ChunkReader> => {
      if (opts.reader) return Promise.resolve(opts.reader);
      if (!repo) throw new CkptError('E_USAGE', 'internal: reading committed chunks without a repository');
      return (own ??= repo.store.reader());
    };
    try {
      read = await computeStats(d.tensors.changed, a, b, reader, opts.onProgress);
    } finally {
      await own?.then((r) => r.close());
    }
  }
  return report(a.side, b.side, { ...d, summary: summarizeDiff(d, opts) }, read);
}
