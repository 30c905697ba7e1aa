/**
 * `ckpt du`: what the checkpoints would take as plain files against what the store takes.
 *
 *   logical   sum of the checkpoint sizes of every commit whose data is kept
 *   unique    raw bytes of the distinct chunks those checkpoints use
 *   chunks    bytes those chunks (and their delta bases) take in packs
 *   disk      bytes of the store's files, by kind, as the filesystem reports them
 *
 * dedup = logical / unique; compression = unique / chunks. Per branch, the same over the commits
 * in the branch's history (a chunk shared by two branches counts in both).
 */
import { CkptError } from '../core/errors.js';
import { createLimiter } from '../core/limiter.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit } from '../core/objects.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import type { StoreDiskUsage } from '../store/storeDiskUsage.js';
import { emptyUsage, type CommitUsage, type UsageEntries } from '../store/usageCache.js';
import { findRoots } from './reachability.js';
import type { Repository } from './repository.js';

export interface UsageFigures {
  commits: number;
  logical: number;
  unique: number;
  chunks: number;
  dedupRatio: number;
  compressionRatio: number;
}

export interface DiskUsage extends UsageFigures {
  prunedCommits: number;
  /** Sizes the pruned commits had. */
  prunedLogical: number;
  /** Stored code files (--with-code), raw bytes. */
  codeBytes: number;
  disk: StoreDiskUsage;
  branches: ({ name: string } & UsageFigures)[];
}

const ratio = (a: number, b: number) => (b === 0 ? 1 : a / b);
/** Metadata reads in flight at once when the usage cache lacks commits. */
const READ_LIMIT = 16;

/** What du knows of the commits the roots reach, and of their manifests. */
interface Reached {
  commits: Map<ObjectId, CommitUsage>;
  live: Set<ObjectId>;
  manifests: Map<ObjectId, ObjectId[]>;
}

function figures(reach: Reached, index: ChunkIndex, commits: Iterable<ObjectId>): UsageFigures {
  let logical = 0;
  let n = 0;
  const manifests = new Set<ObjectId>();
  for (const id of commits) {
    if (!reach.live.has(id)) continue;
    n++;
    const c = reach.commits.get(id)!;
    logical += c.logical;
    for (const m of c.manifests) manifests.add(m);
  }
  const chunks = new Set<ObjectId>();
  for (const m of manifests) for (const c of reach.manifests.get(m)!) chunks.add(c);
  let unique = 0;
  for (const c of chunks) unique += index.get(c)?.raw ?? 0;
  let stored = 0;
  const withBases = new Set<ObjectId>();
  for (const c of chunks) for (let r = index.get(c); r && !withBases.has(r.id); r = r.base ? index.get(r.base) : undefined) withBases.add(r.id);
  for (const c of withBases) stored += index.get(c)!.stored;
  return { commits: n, logical, unique, chunks: stored, dedupRatio: ratio(logical, unique), compressionRatio: ratio(unique, stored) };
}

/**
 * Every commit the roots reach (refs and HEAD, whose history must be readable; recent reflog
 * entries, kept while their commit exists: reachability.ts), with what du needs of each: from
 * the usage cache when it has the commit, else from the objects (commits through the commit
 * cache, as `ckpt log`), gathered in `fresh` (du only reads: the cache is written by commits).
 */
async function reachUsage(repo: Repository, known: UsageEntries, fresh: UsageEntries): Promise<Reached> {
  const roots = await findRoots(repo);
  const pruned = await repo.store.pruned.all();
  const r: Reached = { commits: new Map(), live: new Set(), manifests: new Map() };
  const limit = createLimiter(READ_LIMIT);
  const pending: Promise<unknown>[] = [];
  const later = (p: Promise<unknown>) => {
    pending.push(p);
    p.catch(() => {}); // awaited below; this only keeps an early failure from counting as unhandled
  };
  const manifestReads = new Map<ObjectId, Promise<void>>();
  const manifest = (id: ObjectId): Promise<void> => {
    const had = known.manifests.get(id) ?? fresh.manifests.get(id);
    if (had) {
      r.manifests.set(id, had);
      return Promise.resolve();
    }
    let p = manifestReads.get(id);
    if (!p) {
      p = limit(() => repo.readManifest(id)).then((m) => {
        const chunks: ObjectId[] = [];
        for (const s of m.segments) for (const [c] of s.chunks) chunks.push(c);
        fresh.manifests.set(id, chunks);
        r.manifests.set(id, chunks);
      });
      manifestReads.set(id, p);
    }
    return p;
  };
  const treeManifests = async (id: ObjectId): Promise<{ logical: number; manifests: ObjectId[] }> => {
    const tree = await limit(() => repo.readTree(id));
    let logical = 0;
    const manifests: ObjectId[] = [];
    for (const e of Object.values(tree.files)) {
      logical += e.size;
      manifests.push(e.manifest);
    }
    return { logical, manifests };
  };
  /** The commit's usage, from the cache or computed; undefined for a reflog commit gone. */
  const usageOf = async (id: ObjectId, from: string, required: boolean): Promise<CommitUsage | undefined> => {
    const had = known.commits.get(id) ?? fresh.commits.get(id);
    if (had) {
      // a reflog's commit counts while its file exists (gc may have removed it)
      if (!required && !(await repo.store.meta.has(id))) return undefined;
      return had;
    }
    let c: Commit;
    try {
      c = await (required ? repo.store.meta.getCommitForHistory(id) : repo.readCommit(id));
    } catch (e) {
      if (!required && (e as CkptError).code === 'E_NOT_FOUND') return undefined;
      if (required) throw new CkptError('E_CORRUPT', `${from} points to ${id}, which is not a readable commit; run \`ckpt fsck\``, { ref: from, id });
      throw e;
    }
    const u: CommitUsage = { parents: c.parents, logical: 0, manifests: [], code: [] };
    fresh.commits.set(id, u);
    // the tree and manifests are read while the walk goes on down the history
    later(
      (async () => {
        const t = await treeManifests(c.tree);
        u.logical = t.logical;
        u.manifests = t.manifests;
        if (c.code?.files) u.code = (await treeManifests(c.code.files)).manifests;
      })(),
    );
    return u;
  };
  const walk = async (start: { id: ObjectId; from: string; required: boolean }[]): Promise<void> => {
    // breadth first, a wave at a time, so the reads of commits the cache lacks overlap
    let wave = start;
    while (wave.length) {
      const queued = new Set<ObjectId>();
      wave = wave.filter((w) => !r.commits.has(w.id) && !queued.has(w.id) && queued.add(w.id));
      const got = await Promise.all(wave.map((w) => usageOf(w.id, w.from, w.required)));
      const next: typeof wave = [];
      got.forEach((u, i) => {
        if (!u) return;
        const id = wave[i].id;
        r.commits.set(id, u);
        if (!pruned.has(id)) r.live.add(id);
        for (const p of u.parents) next.push({ id: p, from: `parent of ${id}`, required: true });
      });
      wave = next;
    }
  };
  await walk([...roots.refs].map(([ref, id]) => ({ id, from: ref, required: true })));
  // reflog entries mostly name commits in a ref's history, reached already
  await walk([...roots.reflog].filter((id) => !r.commits.has(id)).map((id) => ({ id, from: 'reflog', required: false })));
  await Promise.all(pending);
  await Promise.all([...r.commits.values()].flatMap((u) => [...u.manifests, ...u.code].map(manifest)));
  return r;
}

export async function diskUsage(repo: Repository): Promise<DiskUsage> {
  const index = await repo.store.reloadIndex();
  // the usage cache: what du needs of each commit this store wrote; the rest is read here
  const known = repo.store.usageEntries();
  const fresh = emptyUsage();
  const reach = await reachUsage(repo, known, fresh);
  const all = figures(reach, index, reach.commits.keys());

  let prunedLogical = 0;
  for (const [id, c] of reach.commits) if (!reach.live.has(id)) prunedLogical += c.logical;
  const codeManifests = new Set<ObjectId>();
  for (const c of reach.commits.values()) for (const m of c.code) codeManifests.add(m);
  const codeChunks = new Set<ObjectId>();
  for (const m of codeManifests) for (const x of reach.manifests.get(m)!) codeChunks.add(x);
  let codeBytes = 0;
  for (const x of codeChunks) codeBytes += index.get(x)?.raw ?? 0;

  const branches: DiskUsage['branches'] = [];
  for (const [ref, tip] of await repo.store.refs.list('refs/heads/')) {
    const members: ObjectId[] = [];
    const stack = [tip];
    const seen = new Set<ObjectId>();
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      members.push(id);
      stack.push(...(reach.commits.get(id)?.parents ?? []));
    }
    branches.push({ name: ref.slice('refs/heads/'.length), ...figures(reach, index, members) });
  }

  return {
    ...all,
    prunedCommits: reach.commits.size - reach.live.size,
    prunedLogical,
    codeBytes,
    disk: await repo.store.diskUsage(known.sizes),
    branches,
  };
}
