/**
 * What the store must keep: the mark phase of gc, and the ground truth for du and fsck.
 *
 * Roots are every ref (the waiting parts of a many-rank commit too), a detached HEAD, and both
 * sides of every reflog entry younger than the reflog window (so a branch deleted or reset by
 * mistake can still be recovered for a while).
 * Every commit in the history of a root keeps its metadata (commit, tree, manifests, code tree):
 * history is never rewritten. Chunks are kept for the commits that are not marked pruned, and for
 * every code tree (small, and the record of how a checkpoint was made), then closed over delta
 * bases, since a kept chunk cannot be decoded without its base.
 */
import { CkptError } from '../core/errors.js';
import { createLimiter } from '../core/limiter.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit, Manifest, Tree } from '../core/objects.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import type { PrunedMark } from '../store/prunedMarks.js';
import type { Repository } from './repository.js';

export const DEFAULT_REFLOG_WINDOW_MS = 30 * 24 * 3600_000;
/** Metadata reads in flight at once while marking. */
const READ_LIMIT = 16;

export interface RootOptions {
  /** Reflog entries younger than this keep what they point to. */
  reflogWindowMs?: number;
}

export interface Roots {
  /** Commits named by refs and HEAD: they must exist. */
  refs: Map<string, ObjectId>;
  /** Commits named by recent reflog entries: kept when they still exist. */
  reflog: Set<ObjectId>;
}

export async function findRoots(repo: Repository, opts: RootOptions = {}): Promise<Roots> {
  const refs = new Map<string, ObjectId>();
  // refs/parts/: the parts of a many-rank commit still waiting for their last rank
  for (const prefix of ['refs/heads/', 'refs/tags/', 'refs/remotes/', 'refs/parts/']) {
    for (const [ref, id] of await repo.store.refs.list(prefix)) refs.set(ref, id);
  }
  const head = await repo.store.refs.readHead();
  if (head.kind === 'detached') refs.set('HEAD', head.id);
  const since = repo.clock() - (opts.reflogWindowMs ?? DEFAULT_REFLOG_WINDOW_MS);
  const reflog = new Set<ObjectId>();
  for (const ref of await repo.store.reflogRefs()) {
    for (const e of await repo.store.refs.log(ref)) {
      if (e.time < since) continue;
      if (e.old) reflog.add(e.old);
      if (e.next) reflog.add(e.next);
    }
  }
  return { refs, reflog };
}

export interface Reachable {
  /** Every commit in the history of a root. */
  commits: Map<ObjectId, Commit>;
  /** Commits whose data is kept (not marked pruned). */
  live: Set<ObjectId>;
  pruned: Map<ObjectId, PrunedMark>;
  /** Metadata objects to keep: commits, trees, manifests. */
  meta: Set<ObjectId>;
  /** Chunks to keep, closed over delta bases. */
  chunks: Set<ObjectId>;
  /** Chunks a kept manifest or code tree names itself (before closing over delta bases). */
  direct: Set<ObjectId>;
  /** Chunks a kept object needs that the index does not have. */
  missing: Set<ObjectId>;
  /** Manifests read on the way, by id. */
  manifests: Map<ObjectId, Manifest>;
  trees: Map<ObjectId, Tree>;
}

function missingRoot(ref: string, id: ObjectId): CkptError {
  return new CkptError('E_CORRUPT', `${ref} points to ${id}, which is not a readable commit; run \`ckpt fsck\``, { ref, id });
}

/**
 * Marks everything the roots reach. Throws when a ref's own commit cannot be read.
 * `assumePruned` adds marks not yet written (a prune's dry run). `forDisplay` (du) reads commits
 * through the commit cache; gc and fsck read every object file.
 */
export async function markReachable(
  repo: Repository,
  roots: Roots,
  index: ChunkIndex,
  assumePruned: Map<ObjectId, PrunedMark> = new Map(),
  opts: { forDisplay?: boolean } = {},
): Promise<Reachable> {
  const pruned = new Map([...(await repo.store.pruned.all()), ...assumePruned]);
  const r: Reachable = {
    commits: new Map(),
    live: new Set(),
    pruned,
    meta: new Set(),
    chunks: new Set(),
    direct: new Set(),
    missing: new Set(),
    manifests: new Map(),
    trees: new Map(),
  };
  const wantChunks = (m: Manifest) => {
    for (const s of m.segments) for (const [id] of s.chunks) r.chunks.add(id);
  };
  // Trees and manifests are read at most READ_LIMIT at a time, each once (a promise per id, so
  // two commits naming one manifest share its read and decode); the walk down the commits does not
  // wait for them, so a long history's metadata reads overlap instead of running one by one.
  const limit = createLimiter(READ_LIMIT);
  const treeReads = new Map<ObjectId, Promise<Tree>>();
  const manifestReads = new Map<ObjectId, Promise<Manifest>>();
  const manifest = (id: ObjectId): Promise<Manifest> => {
    let p = manifestReads.get(id);
    if (!p) {
      p = limit(() => repo.readManifest(id)).then((m) => {
        r.manifests.set(id, m);
        r.meta.add(id);
        return m;
      });
      manifestReads.set(id, p);
    }
    return p;
  };
  const treeDeep = (id: ObjectId): Promise<Tree> => {
    let p = treeReads.get(id);
    if (!p) {
      p = limit(() => repo.readTree(id)).then(async (tree) => {
        r.trees.set(id, tree);
        r.meta.add(id);
        await Promise.all(Object.values(tree.files).map((e) => manifest(e.manifest)));
        return tree;
      });
      treeReads.set(id, p);
    }
    return p;
  };
  const pending: Promise<Tree>[] = [];
  const later = (p: Promise<Tree>) => {
    pending.push(p);
    p.catch(() => {}); // awaited below; this only keeps an early failure from counting as unhandled
  };

  const liveTrees = new Set<ObjectId>();
  const codeTrees = new Set<ObjectId>();
  const readOne = async ({ id, from, required }: { id: ObjectId; from: string; required: boolean }): Promise<Commit | undefined> => {
    try {
      // a display (du) may take the commits a ref's history needs from the commit cache; a
      // reflog's commit is read from its file, which gc may have removed
      return await (opts.forDisplay && required ? repo.store.meta.getCommitForHistory(id) : repo.readCommit(id));
    } catch (e) {
      if (!required && (e as CkptError).code === 'E_NOT_FOUND') return undefined;
      if (required) throw missingRoot(from, id);
      throw e;
    }
  };
  // breadth first, a wave of commits at a time: the roots (often many, from the reflog) are read
  // together, and a merge's parents too; a straight history is one commit per wave
  let wave: { id: ObjectId; from: string; required: boolean }[] = [
    ...[...roots.refs].map(([ref, id]) => ({ id, from: ref, required: true })),
    ...[...roots.reflog].map((id) => ({ id, from: 'reflog', required: false })),
  ];
  const commitLimit = createLimiter(READ_LIMIT);
  while (wave.length) {
    const queued = new Set<ObjectId>();
    wave = wave.filter((w) => !r.commits.has(w.id) && !queued.has(w.id) && queued.add(w.id));
    const read = await Promise.all(wave.map((w) => commitLimit(() => readOne(w))));
    const next: typeof wave = [];
    read.forEach((c, i) => {
      if (!c) return;
      const id = wave[i].id;
      r.commits.set(id, c);
      r.meta.add(id);
      if (!pruned.has(id)) {
        r.live.add(id);
        liveTrees.add(c.tree);
      }
      later(treeDeep(c.tree));
      if (c.code?.files) {
        codeTrees.add(c.code.files);
        later(treeDeep(c.code.files));
      }
      for (const p of c.parents) next.push({ id: p, from: `parent of ${id}`, required: true });
    });
    wave = next;
  }
  await Promise.all(pending);
  for (const t of new Set([...liveTrees, ...codeTrees])) {
    for (const e of Object.values(r.trees.get(t)!.files)) wantChunks(r.manifests.get(e.manifest)!);
  }
  r.direct = new Set(r.chunks);

  for (const id of [...r.chunks]) {
    for (let cur: ObjectId | undefined = id; cur; ) {
      const rec = index.get(cur);
      if (!rec) {
        r.missing.add(cur);
        break;
      }
      const base: ObjectId | undefined = rec.base;
      if (!base || r.chunks.has(base)) break;
      r.chunks.add(base);
      cur = base;
    }
  }
  return r;
}
