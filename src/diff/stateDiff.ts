/**
 * The structural diff of two model states, from their chunk ids alone: nothing here reads tensor
 * data. It says which tensors changed and, for each, which chunk pairs differ, so the caller reads
 * only those and feeds them to TensorDeltaStats; equal chunks are known equal by id.
 */
import picomatch from 'picomatch';
import type { ChunkRef, CodeProvenance, CommitMeta } from '../core/objects.js';

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  len: number;
  chunks: ChunkRef[];
}

export interface FileView {
  format: string;
  size: number;
  hash: string;
  tensors: TensorInfo[];
}

/** What a commit says about itself; absent for files in the work tree. */
export interface StateMeta extends CommitMeta {
  message?: string;
  code?: CodeProvenance;
}

export interface StateView {
  /** Relative path (forward slashes) -> file. */
  files: Record<string, FileView>;
  meta?: StateMeta;
}

export interface DiffOptions {
  /** Globs on tensor names (picomatch); a tensor is compared when it matches any. */
  tensors?: string | string[];
}

export interface FileSummary {
  path: string;
  format: string;
  size: number;
  hash: string;
}

export interface FileChange {
  path: string;
  a: FileSummary;
  b: FileSummary;
}

/** A tensor as one side holds it. */
export interface TensorLoc {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  /** Elements (product of the shape). */
  elements: number;
  bytes: number;
}

export interface RenamedTensor {
  from: TensorLoc;
  to: TensorLoc;
}

export interface RetypedTensor {
  name: string;
  a: TensorLoc;
  b: TensorLoc;
  /** The bytes are the same (same chunk ids): a reshape or a reinterpretation, no new values. */
  sameBytes: boolean;
}

export interface ChangedTensor<S = unknown> {
  name: string;
  /** File in B; `fileA` is set only when A held it in another file. */
  file: string;
  fileA?: string;
  dtype: string;
  shape: number[];
  elements: number;
  bytes: number;
  /** Chunks in the tensor (A's count). */
  chunks: number;
  /**
   * Indices of the chunk pairs whose ids differ; the others are equal and need no read. Null when
   * A and B were cut at different boundaries (another chunk size): then the caller streams both
   * tensors whole, pairing equal byte ranges.
   */
  changedChunks: number[] | null;
  /** Filled in by whoever reads the changed chunks (left out with --no-stats). */
  stats?: S;
}

export interface UnchangedTensor {
  name: string;
  file: string;
  elements: number;
}

export interface MetaChange {
  /** 'message', 'step', 'epoch', 'metrics.<name>', 'params.<name>', 'code.commit', 'code.branch', 'code.dirty'. */
  field: string;
  a: string | number | boolean | null;
  b: string | number | boolean | null;
  /** b - a, when both are numbers. */
  delta?: number;
}

export interface StateDiff<S = unknown> {
  /** Nothing differs in any section. */
  identical: boolean;
  /** The tensor globs; when set, only matching tensors are compared and `files` and `meta` stay empty. */
  filter: string[] | null;
  files: {
    added: FileSummary[];
    removed: FileSummary[];
    changed: FileChange[];
    unchanged: number;
  };
  tensors: {
    added: TensorLoc[];
    removed: TensorLoc[];
    renamed: RenamedTensor[];
    /** Dtype differs (the shape may too). */
    dtypeChanged: RetypedTensor[];
    /** Same dtype, another shape. */
    shapeChanged: RetypedTensor[];
    changed: ChangedTensor<S>[];
    unchanged: UnchangedTensor[];
  };
  meta: MetaChange[];
}

interface Located {
  key: string;
  file: string;
  t: TensorInfo;
}

function elementsOf(shape: number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

function loc(x: Located): TensorLoc {
  return {
    name: x.t.name,
    file: x.file,
    dtype: x.t.dtype,
    shape: x.t.shape,
    elements: elementsOf(x.t.shape),
    bytes: x.t.len,
  };
}

function fileSummary(path: string, f: FileView): FileSummary {
  return { path, format: f.format, size: f.size, hash: f.hash };
}

const byName = (x: { name: string }, y: { name: string }) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0);
const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);

/** Names held by more than one file in a state: sharded checkpoints keep names unique across files. */
function sharedNames(s: StateView): Set<string> {
  const seen = new Map<string, string>();
  const shared = new Set<string>();
  for (const [path, f] of Object.entries(s.files)) {
    for (const t of f.tensors) {
      const prev = seen.get(t.name);
      if (prev !== undefined && prev !== path) shared.add(t.name);
      seen.set(t.name, path);
    }
  }
  return shared;
}

/**
 * Tensors keyed by name, or by `file:name` for a name two files of either state share, so a
 * tensor that moves between shards still pairs with itself.
 */
function locate(s: StateView, shared: Set<string>, match: (name: string) => boolean): Map<string, Located> {
  const out = new Map<string, Located>();
  for (const path of Object.keys(s.files).sort(cmp)) {
    for (const t of s.files[path].tensors) {
      if (!match(t.name)) continue;
      const key = shared.has(t.name) ? `${path}:${t.name}` : t.name;
      out.set(key, { key, file: path, t });
    }
  }
  return out;
}

function contentKey(t: TensorInfo): string {
  return `${t.dtype}|${t.shape.join('x')}|${t.chunks.map((c) => c[0]).join(',')}`;
}

function sameChunks(a: ChunkRef[], b: ChunkRef[]): boolean {
  return a.length === b.length && a.every((c, i) => c[0] === b[i][0]);
}

/** Indices of differing chunk pairs, or null when the two lists are not cut at the same boundaries. */
function changedChunkIndices(a: ChunkRef[], b: ChunkRef[]): number[] | null {
  if (a.length !== b.length || a.some((c, i) => c[1] !== b[i][1])) return null;
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (a[i][0] !== b[i][0]) out.push(i);
  return out;
}

function diffFiles(a: StateView, b: StateView): StateDiff['files'] {
  const res: StateDiff['files'] = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const path of Object.keys(a.files).sort(cmp)) {
    const fa = a.files[path];
    const fb = b.files[path];
    if (!fb) res.removed.push(fileSummary(path, fa));
    else if (fa.hash !== fb.hash) res.changed.push({ path, a: fileSummary(path, fa), b: fileSummary(path, fb) });
    else res.unchanged++;
  }
  for (const path of Object.keys(b.files).sort(cmp)) {
    if (!a.files[path]) res.added.push(fileSummary(path, b.files[path]));
  }
  return res;
}

type Scalar = string | number | boolean | null;

function pushChange(out: MetaChange[], field: string, x: Scalar | undefined, y: Scalar | undefined): void {
  const a = x ?? null;
  const b = y ?? null;
  if (a === b || (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b))) return;
  const change: MetaChange = { field, a, b };
  if (typeof a === 'number' && typeof b === 'number') change.delta = b - a;
  out.push(change);
}

function diffRecords(
  out: MetaChange[],
  prefix: string,
  a: Record<string, Scalar> | undefined,
  b: Record<string, Scalar> | undefined,
): void {
  const keys = new Set([...Object.keys(a ?? {}), ...Object.keys(b ?? {})]);
  for (const k of [...keys].sort(cmp)) pushChange(out, `${prefix}.${k}`, a?.[k], b?.[k]);
}

function diffMeta(a: StateMeta | undefined, b: StateMeta | undefined): MetaChange[] {
  // A work-tree file has no metadata; comparing it with a commit's would report every field.
  if (!a || !b) return [];
  const out: MetaChange[] = [];
  pushChange(out, 'message', a.message, b.message);
  pushChange(out, 'step', a.step, b.step);
  pushChange(out, 'epoch', a.epoch, b.epoch);
  diffRecords(out, 'metrics', a.metrics, b.metrics);
  diffRecords(out, 'params', a.params, b.params);
  pushChange(out, 'code.commit', a.code?.commit, b.code?.commit);
  pushChange(out, 'code.branch', a.code?.branch, b.code?.branch);
  pushChange(out, 'code.dirty', a.code?.dirty, b.code?.dirty);
  return out;
}

export function diffStates<S = unknown>(a: StateView, b: StateView, opts: DiffOptions = {}): StateDiff<S> {
  const list = opts.tensors === undefined ? [] : ([] as string[]).concat(opts.tensors);
  const globs = list.length ? list : null;
  const match = globs ? picomatch(globs, { dot: true }) : () => true;
  const shared = new Set([...sharedNames(a), ...sharedNames(b)]);
  const ta = locate(a, shared, match);
  const tb = locate(b, shared, match);

  const tensors: StateDiff<S>['tensors'] = {
    added: [],
    removed: [],
    renamed: [],
    dtypeChanged: [],
    shapeChanged: [],
    changed: [],
    unchanged: [],
  };
  const removed: Located[] = [];
  for (const [key, x] of ta) {
    const y = tb.get(key);
    if (!y) {
      removed.push(x);
      continue;
    }
    const moved = x.file !== y.file ? { fileA: x.file } : {};
    if (x.t.dtype !== y.t.dtype || x.t.shape.join() !== y.t.shape.join()) {
      const entry = { name: y.t.name, a: loc(x), b: loc(y), sameBytes: sameChunks(x.t.chunks, y.t.chunks) };
      (x.t.dtype !== y.t.dtype ? tensors.dtypeChanged : tensors.shapeChanged).push(entry);
    } else if (sameChunks(x.t.chunks, y.t.chunks)) {
      tensors.unchanged.push({ name: y.t.name, file: y.file, elements: elementsOf(y.t.shape) });
    } else {
      tensors.changed.push({
        name: y.t.name,
        file: y.file,
        ...moved,
        dtype: y.t.dtype,
        shape: y.t.shape,
        elements: elementsOf(y.t.shape),
        bytes: y.t.len,
        chunks: x.t.chunks.length,
        changedChunks: changedChunkIndices(x.t.chunks, y.t.chunks),
      });
    }
  }

  // A removed tensor whose exact content reappears under a new name was renamed. Candidates with
  // the same content pair up in name order, so the answer does not depend on map order.
  const addedByContent = new Map<string, Located[]>();
  const added = [...tb.values()].filter((y) => !ta.has(y.key)).sort((p, q) => cmp(p.key, q.key));
  for (const y of added) {
    const k = contentKey(y.t);
    const list = addedByContent.get(k);
    if (list) list.push(y);
    else addedByContent.set(k, [y]);
  }
  const renamedTo = new Set<Located>();
  for (const x of removed.sort((p, q) => cmp(p.key, q.key))) {
    const y = addedByContent.get(contentKey(x.t))?.shift();
    if (y) {
      tensors.renamed.push({ from: loc(x), to: loc(y) });
      renamedTo.add(y);
    } else {
      tensors.removed.push(loc(x));
    }
  }
  for (const y of added) if (!renamedTo.has(y)) tensors.added.push(loc(y));

  for (const list of [tensors.added, tensors.removed, tensors.changed, tensors.unchanged]) list.sort(byName);
  tensors.renamed.sort((p, q) => byName(p.to, q.to));
  tensors.dtypeChanged.sort(byName);
  tensors.shapeChanged.sort(byName);

  // A filter asks about some tensors only: file hashes and commit metadata would answer "changed"
  // for every other tensor, so they are left out of the comparison.
  const files = globs ? { added: [], removed: [], changed: [], unchanged: 0 } : diffFiles(a, b);
  const meta = globs ? [] : diffMeta(a.meta, b.meta);
  const identical =
    files.added.length + files.removed.length + files.changed.length === 0 &&
    tensors.added.length + tensors.removed.length + tensors.renamed.length === 0 &&
    tensors.dtypeChanged.length + tensors.shapeChanged.length + tensors.changed.length === 0 &&
    meta.length === 0;
  return { identical, filter: globs, files, tensors, meta };
}
