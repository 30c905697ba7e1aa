/**
 * Builds the document `ckpt view` draws: the commits reachable from the chosen branches (or
 * REVs), their metrics, the norms of their tensors from the manifests' sums of squares, every
 * parent→child comparison (exact from `diff` where the chunks can be read, else a bound from the
 * sums of squares), and the `du` figures per commit.
 */
import picomatch from 'picomatch';
import { UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit, Manifest } from '../core/objects.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import type { ChunkReader } from '../store/chunkReader.js';
import { diff } from '../repo/diff.js';
import { diskUsage } from '../repo/diskUsage.js';
import { refsByCommit } from '../repo/history.js';
import { readPrunedMarks } from '../repo/prunedMarks.js';
import type { Repository } from '../repo/repository.js';
import { resolveRevision } from '../repo/resolveRevision.js';
import type { CommitUsage, ViewChangedTensor, ViewCommit, ViewData, ViewPair } from './viewTypes.js';

export interface ViewOptions {
  /** Draw the history reachable from these revisions instead of every branch. */
  revs?: string[];
  /** Only branches whose name matches (picomatch). */
  branches?: string;
  /** Only these metrics (default every metric any commit has). */
  metrics?: string[];
  /** false: read no chunk; every comparison is a bound from the sums of squares. */
  read?: boolean;
  groupDepth?: number;
  title?: string;
}

interface TensorOfCommit {
  key: string;
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  chunks: [string, number][];
  sumsq?: number[];
}

export function encodeFloat32(values: ArrayLike<number>): string {
  const a = Float32Array.from(values as ArrayLike<number>);
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}


/** Commits reachable from `tips`, oldest first, parents before children. */
async function walk(repo: Repository, tips: ObjectId[]): Promise<Map<ObjectId, Commit>> {
  const found = new Map<ObjectId, Commit>();
  const stack = [...tips];
  while (stack.length) {
    const id = stack.pop()!;
    if (found.has(id)) continue;
    // a shallow or partial store may lack an ancestor: the history shown stops there
    const c = await repo.readCommit(id).catch(() => undefined);
    if (!c) continue;
    found.set(id, c);
    stack.push(...c.parents);
  }
  // by time, then each commit after its parents (clocks can disagree)
  const byTime = [...found.keys()].sort((x, y) => found.get(x)!.time - found.get(y)!.time || (x < y ? -1 : 1));
  const out = new Map<ObjectId, Commit>();
  const visit = (id: ObjectId) => {
    if (out.has(id)) return;
    const todo: [ObjectId, boolean][] = [[id, false]];
    while (todo.length) {
      const [x, expanded] = todo.pop()!;
      if (out.has(x)) continue;
      if (expanded) {
        out.set(x, found.get(x)!);
        continue;
      }
      todo.push([x, true]);
      for (const p of found.get(x)!.parents) if (found.has(p) && !out.has(p)) todo.push([p, false]);
    }
  };
  byTime.forEach(visit);
  return out;
}

/**
 * A tensor is known by its name, as diff pairs tensors across files by name (a run writes
 * step_100.safetensors, then step_200.safetensors); by name and file only when one commit holds
 * the name in several files.
 */
function tensorsOf(file: string, m: Manifest): TensorOfCommit[] {
  const out: TensorOfCommit[] = [];
  for (const s of m.segments) {
    if (s.t !== 'tensor') continue;
    out.push({ key: s.name, name: s.name, file, dtype: s.dtype, shape: s.shape, chunks: s.chunks, sumsq: s.sumsq });
  }
  return out;
}

const sum = (xs: number[]) => xs.reduce((n, x) => n + x, 0);

/** Lower bound of ||B − A||² from the chunks' sums of squares; NaN when unchanged or without them. */
export function boundFromSumsq(a: TensorOfCommit, b: TensorOfCommit): number {
  if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) return NaN;
  if (!a.sumsq || !b.sumsq) return NaN;
  let changed = false;
  let d2 = 0;
  if (a.chunks.length === b.chunks.length && a.chunks.every(([, n], i) => n === b.chunks[i][1])) {
    for (let i = 0; i < a.chunks.length; i++) {
      if (a.chunks[i][0] === b.chunks[i][0]) continue;
      changed = true;
      const d = Math.sqrt(b.sumsq[i]) - Math.sqrt(a.sumsq[i]);
      d2 += d * d;
    }
  } else {
    // cut at other boundaries: the whole tensor's norms
    changed = a.chunks.map((c) => c[0]).join() !== b.chunks.map((c) => c[0]).join();
    const d = Math.sqrt(sum(b.sumsq)) - Math.sqrt(sum(a.sumsq));
    d2 = d * d;
  }
  return changed ? d2 : NaN;
}

function usage(index: ChunkIndex, logical: number, chunkIds: Set<string>, seen: Set<string>): CommitUsage {
  let unique = 0;
  let newUnique = 0;
  const fresh = new Set<string>();
  for (const c of chunkIds) {
    const raw = index.get(c)?.raw ?? 0;
    unique += raw;
    if (!seen.has(c)) {
      newUnique += raw;
      fresh.add(c);
    }
  }
  // as du counts a set: the chunks with the delta bases they need
  const withBases = new Set<string>();
  for (const c of chunkIds) for (let r = index.get(c); r && !withBases.has(r.id); r = r.base ? index.get(r.base) : undefined) withBases.add(r.id);
  let chunks = 0;
  for (const c of withBases) chunks += index.get(c)!.stored;
  // what the commit added: its new chunks as stored (a delta's base is older, already counted)
  let newChunks = 0;
  for (const c of fresh) newChunks += index.get(c)?.stored ?? 0;
  for (const c of fresh) seen.add(c);
  return { logical, unique, chunks, newUnique, newChunks };
}

export async function buildViewData(repo: Repository, opts: ViewOptions = {}): Promise<ViewData> {
  const groupDepth = opts.groupDepth ?? 2;
  if (!Number.isInteger(groupDepth) || groupDepth < 1) throw new UsageError(`--group-depth must be a whole number of at least 1, got ${groupDepth}`);
  const refs = repo.store.refs;
  const current = await repo.currentBranch();
  const match = opts.branches ? picomatch(opts.branches) : () => true;
  const branches = [...(await refs.list('refs/heads/'))]
    .map(([ref, id]) => ({ name: ref.slice('refs/heads/'.length), id, current: ref === current }))
    .filter((b) => match(b.name));
  const selectedIds: ObjectId[] = [];
  for (const r of opts.revs ?? []) selectedIds.push(await resolveRevision(repo, r));
  const tips = opts.revs?.length ? selectedIds : branches.map((b) => b.id);
  if (opts.branches && !opts.revs?.length && branches.length === 0) throw new UsageError(`no branch matches ${JSON.stringify(opts.branches)}`);
  const history = await walk(repo, tips);
  const ids = [...history.keys()];
  const indexOf = new Map(ids.map((id, i) => [id, i]));
  const tags = [...(await refs.list('refs/tags/'))].map(([ref, id]) => ({ name: ref.slice('refs/tags/'.length), id })).filter((t) => indexOf.has(t.id));
  const shownBranches = branches.filter((b) => indexOf.has(b.id));
  const names = await refsByCommit(repo);
  const pruned = await readPrunedMarks(repo);
  const index = await repo.store.reloadIndex();

  // every commit's tensors, from its manifests (each read once however many commits share it)
  const manifests = new Map<string, Promise<Manifest>>();
  const readManifest = (id: string) => {
    let m = manifests.get(id);
    if (!m) manifests.set(id, (m = repo.readManifest(id)));
    return m;
  };
  const perCommit: Map<string, TensorOfCommit>[] = [];
  const commits: ViewCommit[] = [];
  const seenChunks = new Set<string>();
  const tensorInfo = new Map<string, { name: string; file: string }>();
  const metricNames = new Set<string>();
  for (const id of ids) {
    const c = history.get(id)!;
    const tree = await repo.readTree(c.tree);
    const tensors = new Map<string, TensorOfCommit>();
    const chunkIds = new Set<string>();
    let logical = 0;
    for (const [file, e] of Object.entries(tree.files).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) {
      logical += e.size;
      const m = await readManifest(e.manifest);
      for (const s of m.segments) for (const [cid] of s.chunks) chunkIds.add(cid);
      for (const t of tensorsOf(file, m)) {
        if (tensors.has(t.key)) t.key = `${t.name}\0${file}`;
        tensors.set(t.key, t);
        if (!tensorInfo.has(t.key)) tensorInfo.set(t.key, { name: t.name, file });
      }
    }
    perCommit.push(tensors);
    for (const k of Object.keys(c.meta.metrics ?? {})) metricNames.add(k);
    const mark = pruned.get(id);
    commits.push({
      id,
      refs: names.get(id) ?? [],
      ...c,
      ...(mark ? { pruned: { time: new Date(mark.time).toISOString(), reason: mark.reason } } : {}),
      du: usage(index, logical, chunkIds, seenChunks),
    });
  }
  const keys = [...tensorInfo.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const column = new Map(keys.map((k, i) => [k, i]));
  const norms = new Float32Array(ids.length * keys.length).fill(NaN);
  perCommit.forEach((tensors, ci) => {
    for (const t of tensors.values()) if (t.sumsq) norms[ci * keys.length + column.get(t.key)!] = Math.sqrt(sum(t.sumsq));
  });

  // parent→child comparisons, and the REVs pairwise
  const wanted: { a: number; b: number; kind: ViewPair['kind'] }[] = [];
  ids.forEach((id, bi) => {
    for (const p of history.get(id)!.parents) if (indexOf.has(p)) wanted.push({ a: indexOf.get(p)!, b: bi, kind: 'parent' });
  });
  for (let i = 0; i + 1 < selectedIds.length; i++) {
    const a = indexOf.get(selectedIds[i])!;
    const b = indexOf.get(selectedIds[i + 1])!;
    if (a !== b && !wanted.some((w) => w.a === a && w.b === b)) wanted.push({ a, b, kind: 'selected' });
  }
  let reader: ChunkReader | undefined;
  const pairs: ViewPair[] = [];
  try {
    for (const w of wanted) {
      const note = opts.read === false ? 'not read (--no-read)' : commits[w.a].pruned || commits[w.b].pruned ? 'a side is pruned: its data is gone' : undefined;
      if (!note) {
        try {
          reader ??= await repo.store.reader();
          const d = await diff(repo, ids[w.a], ids[w.b], { reader, groupDepth });
          const changed: ViewChangedTensor[] = d.tensors.changed.map((t) => ({
            name: t.name,
            file: t.file,
            dtype: t.dtype,
            shape: t.shape,
            elements: t.elements,
            ...(t.stats ? { stats: t.stats } : {}),
          }));
          const x = d.tensors;
          const restructured = x.added.length + x.removed.length + x.renamed.length + x.dtypeChanged.length + x.shapeChanged.length;
          pairs.push({ ...w, exact: true, changed, restructured });
          continue;
        } catch (e) {
          pairs.push({ ...w, exact: false, note: `could not read: ${(e as Error).message}`, bound: boundOf(w.a, w.b) });
          continue;
        }
      }
      pairs.push({ ...w, exact: false, note, bound: boundOf(w.a, w.b) });
    }
  } finally {
    await reader?.close();
  }

  function boundOf(a: number, b: number): string {
    const out = new Float32Array(keys.length).fill(NaN);
    for (const [k, tb] of perCommit[b]) {
      const ta = perCommit[a].get(k);
      if (ta) out[column.get(k)!] = boundFromSumsq(ta, tb);
    }
    return encodeFloat32(out);
  }

  const metrics = opts.metrics?.length ? opts.metrics : [...metricNames].sort();
  const selected: [number, number] | null = selectedIds.length >= 2 ? [indexOf.get(selectedIds[0])!, indexOf.get(selectedIds[1])!] : null;
  return {
    format: 'ckpt-view',
    version: 1,
    title: opts.title ?? 'ckpt view',
    generated: new Date().toISOString(),
    head: await repo.headCommit(),
    branches: shownBranches,
    tags,
    metrics,
    commits,
    tensors: { name: keys, file: keys.map((k) => tensorInfo.get(k)!.file) },
    norms: encodeFloat32(norms),
    pairs,
    du: await diskUsage(repo),
    groupDepth,
    selected,
  };
}
