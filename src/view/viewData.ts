/**
 * Builds the document `ckpt view` draws: the commits reachable from the chosen branches (or
 * REVs), their metrics, the norms of their tensors from the manifests' sums of squares, every
 * parent→child comparison (exact from `diff` where the chunks can be read, else a bound from the
 * sums of squares), and the `du` figures per commit.
 */
import picomatch from 'picomatch';
import { UsageError, type CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit, Manifest, ManifestTensorSegment } from '../core/objects.js';
import type { ChunkIndex, IndexedChunk } from '../store/chunkIndex.js';
import type { ChunkReader } from '../store/chunkReader.js';
import { diff } from '../repo/diff.js';
import { refsByCommit } from '../repo/history.js';
import type { Repository } from '../repo/repository.js';
import { resolveRevision } from '../repo/resolveRevision.js';
import type { CommitUsage, StoreUsage, ViewChangedTensor, ViewCommit, ViewData, ViewPair } from './viewTypes.js';

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
  /** Called after each comparison diff ran (or was bounded): done of total. */
  onProgress?: (done: number, total: number) => void;
}

export function encodeFloat32(values: ArrayLike<number>): string {
  const a = Float32Array.from(values as ArrayLike<number>);
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

/** Commits reachable from `tips`, oldest first, parents before children. */
async function walk(repo: Repository, tips: ObjectId[]): Promise<Map<ObjectId, Commit>> {
  const found = new Map<ObjectId, Commit>();
  const tried = new Set<ObjectId>();
  // breadth first, a wave of reads at a time (a wave is as wide as the lines of history)
  for (let wave = [...new Set(tips)]; wave.length; ) {
    for (const id of wave) tried.add(id);
    // a shallow or partial store may lack an ancestor: the history shown stops there
    const read = await Promise.all(
      wave.map((id) =>
        repo.readCommit(id).catch((e: unknown) => {
          if ((e as CkptError).code === 'E_NOT_FOUND') return undefined;
          throw e;
        }),
      ),
    );
    const next = new Set<ObjectId>();
    wave.forEach((id, i) => {
      const c = read[i];
      if (!c) return;
      found.set(id, c);
      for (const p of c.parents) if (!tried.has(p)) next.add(p);
    });
    wave = [...next];
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

const sum = (xs: number[]) => xs.reduce((n, x) => n + x, 0);

/**
 * Lower bound of ||B − A||² from the chunks' sums of squares (||b_c − a_c|| >= | ||b_c|| − ||a_c|| |
 * for each chunk that differs); NaN when unchanged or without sums. The sums skip non-finite
 * elements, so where NaN or Inf appear it bounds the change of the finite part only.
 */
function boundFromSumsq(a: ManifestTensorSegment, b: ManifestTensorSegment): number {
  if (a.dtype !== b.dtype || a.shape.length !== b.shape.length || a.shape.some((n, i) => n !== b.shape[i])) return NaN;
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

/** Packed bytes of `chunks` with the delta bases they need that are not among them (as du counts a set). */
function packedBytes(index: ChunkIndex, chunks: Iterable<IndexedChunk>, has: (r: IndexedChunk) => boolean): number {
  let n = 0;
  const bases = new Set<IndexedChunk>();
  for (const r of chunks) {
    n += r.stored;
    for (let b = r.base ? index.get(r.base) : undefined; b && !has(b) && !bases.has(b); b = b.base ? index.get(b.base) : undefined) {
      bases.add(b);
      n += b.stored;
    }
  }
  return n;
}

/**
 * The du figures of commit `ci` from its chunk ids (repeats allowed). A chunk not in the index
 * (its data dropped) counts nothing. `lastSeen` maps a chunk to the last commit that used it:
 * one lookup tells a repeat within the commit from a chunk an earlier commit already brought.
 */
function usage(index: ChunkIndex, ci: number, logical: number, chunkIds: string[], lastSeen: Map<IndexedChunk, number>): { du: CommitUsage; mine: IndexedChunk[] } {
  let unique = 0;
  let newUnique = 0;
  let newChunks = 0;
  const mine: IndexedChunk[] = [];
  for (const c of chunkIds) {
    const r = index.get(c);
    if (!r) continue;
    const last = lastSeen.get(r);
    if (last === ci) continue;
    lastSeen.set(r, ci);
    mine.push(r);
    unique += r.raw;
    if (last !== undefined) continue;
    newUnique += r.raw;
    // what the commit added: its new chunks as stored (a delta's base is older, already counted)
    newChunks += r.stored;
  }
  return { du: { logical, unique, chunks: packedBytes(index, mine, (r) => lastSeen.get(r) === ci), newUnique, newChunks }, mine };
}

/** `ckpt du --json`'s store-wide figures, over the commits shown whose data is kept. */
function storeUsage(index: ChunkIndex, commits: ViewCommit[], liveChunks: { keys(): Iterable<IndexedChunk>; has(r: IndexedChunk): boolean }): StoreUsage {
  const live = commits.filter((c) => !c.pruned);
  const logical = live.reduce((n, c) => n + c.du.logical, 0);
  let unique = 0;
  for (const r of liveChunks.keys()) unique += r.raw;
  const chunks = packedBytes(index, liveChunks.keys(), (r) => liveChunks.has(r));
  const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b);
  const pruned = commits.filter((c) => c.pruned);
  return {
    commits: live.length,
    logical,
    unique,
    chunks,
    dedupRatio: ratio(logical, unique),
    compressionRatio: ratio(unique, chunks),
    prunedCommits: pruned.length,
    prunedLogical: pruned.reduce((n, c) => n + c.du.logical, 0),
  };
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
  const pruned = await repo.store.pruned.all();
  const index = await repo.store.reloadIndex();

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

  // One pass over the commits, oldest first, reading ahead. A commit's tensors stay in memory
  // only until the comparisons it is a side of have their bounds. Tensors get columns in the
  // order they are first seen; the columns are sorted by name at the end.
  const uses = new Array<number>(ids.length).fill(0);
  const completesAt = new Map<number, number[]>();
  wanted.forEach((w, wi) => {
    uses[w.a]++;
    uses[w.b]++;
    const at = Math.max(w.a, w.b);
    completesAt.set(at, [...(completesAt.get(at) ?? []), wi]);
  });
  const manifests = new Map<string, Promise<Manifest>>();
  const load = async (id: ObjectId) => {
    const tree = await repo.readTree(history.get(id)!.tree);
    const files = Object.entries(tree.files).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    return Promise.all(
      files.map(async ([file, e]) => {
        // a manifest shared by commits read close together is read once
        let m = manifests.get(e.manifest);
        if (!m) manifests.set(e.manifest, (m = repo.readManifest(e.manifest)));
        return { file, size: e.size, manifest: await m, id: e.manifest };
      }),
    );
  };
  const AHEAD = 4;
  const loading: (ReturnType<typeof load> | undefined)[] = [];
  // a commit's tensors by column, while a comparison still needs them
  const live = new Map<number, (ManifestTensorSegment | undefined)[]>();
  const columnOf = new Map<string, number>();
  const tensorFile: string[] = [];
  const column = (key: string, file: string) => {
    let col = columnOf.get(key);
    if (col === undefined) {
      columnOf.set(key, (col = columnOf.size));
      tensorFile.push(file);
    }
    return col;
  };
  const normRows: Float32Array[] = [];
  const bounds: Float32Array[] = [];
  const commits: ViewCommit[] = [];
  const lastSeen = new Map<IndexedChunk, number>();
  // the chunks of commits whose data is kept, for the store-wide figures (all seen when none is pruned)
  const liveChunks = pruned.size ? new Set<IndexedChunk>() : undefined;
  const metricNames = new Set<string>();
  for (const [ci, id] of ids.entries()) {
    for (let k = ci; k < Math.min(ids.length, ci + AHEAD); k++) {
      if (loading[k]) continue;
      loading[k] = load(ids[k]);
      loading[k]!.catch(() => undefined);
    }
    const files = await loading[ci]!;
    loading[ci] = undefined;
    const c = history.get(id)!;
    // A tensor is known by its name, as diff pairs tensors across files by name (a run writes
    // step_100.safetensors, then step_200.safetensors); by name and file only when this commit
    // holds the name in several files.
    const tensors: (ManifestTensorSegment | undefined)[] = [];
    const chunkIds: string[] = [];
    let logical = 0;
    for (const { file, size, manifest: m, id: mid } of files) {
      manifests.delete(mid);
      logical += size;
      for (const s of m.segments) {
        for (const [cid] of s.chunks) chunkIds.push(cid);
        if (s.t !== 'tensor') continue;
        let col = column(s.name, file);
        if (tensors[col]) col = column(`${s.name}\0${file}`, file);
        tensors[col] = s;
      }
    }
    const row = new Float32Array(columnOf.size).fill(NaN);
    tensors.forEach((t, j) => {
      if (t?.sumsq) row[j] = Math.sqrt(sum(t.sumsq));
    });
    normRows.push(row);
    live.set(ci, tensors);
    for (const wi of completesAt.get(ci) ?? []) {
      const w = wanted[wi];
      const out = new Float32Array(columnOf.size).fill(NaN);
      const ta = live.get(w.a)!;
      live.get(w.b)!.forEach((tb, j) => {
        const x = ta[j];
        if (x && tb) out[j] = boundFromSumsq(x, tb);
      });
      bounds[wi] = out;
      for (const side of [w.a, w.b]) if (--uses[side] === 0) live.delete(side);
    }
    if (uses[ci] === 0) live.delete(ci);

    for (const k of Object.keys(c.meta.metrics ?? {})) metricNames.add(k);
    const mark = pruned.get(id);
    const { du, mine } = usage(index, ci, logical, chunkIds, lastSeen);
    if (!mark && liveChunks) for (const r of mine) liveChunks.add(r);
    commits.push({
      id,
      refs: names.get(id) ?? [],
      ...c,
      ...(mark ? { pruned: { time: new Date(mark.time).toISOString(), reason: mark.reason } } : {}),
      du,
    });
  }
  const keys = [...columnOf.keys()].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  const sorted = new Map(keys.map((k, i) => [k, i]));
  // first-seen column -> sorted column
  const perm = [...columnOf.keys()].map((k) => sorted.get(k)!);
  const permuted = (row: Float32Array, out: Float32Array, base = 0) => {
    for (let j = 0; j < row.length; j++) out[base + perm[j]] = row[j];
    return out;
  };
  const norms = new Float32Array(ids.length * keys.length).fill(NaN);
  normRows.forEach((row, ci) => permuted(row, norms, ci * keys.length));
  const boundOf = (wi: number) => encodeFloat32(permuted(bounds[wi], new Float32Array(keys.length).fill(NaN)));

  let reader: ChunkReader | undefined;
  const pairs: ViewPair[] = [];
  try {
    for (const [wi, w] of wanted.entries()) {
      opts.onProgress?.(wi, wanted.length);
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
          pairs.push({ ...w, exact: false, note: `could not read: ${(e as Error).message}`, bound: boundOf(wi) });
          continue;
        }
      }
      pairs.push({ ...w, exact: false, note, bound: boundOf(wi) });
    }
  } finally {
    await reader?.close();
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
    tensors: { name: keys, file: keys.map((k) => tensorFile[columnOf.get(k)!]) },
    norms: encodeFloat32(norms),
    pairs,
    du: storeUsage(index, commits, liveChunks ?? lastSeen),
    groupDepth,
    selected,
  };
}
