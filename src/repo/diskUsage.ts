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
import type { ObjectId } from '../core/objectId.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import type { StoreDiskUsage } from '../store/storeDiskUsage.js';
import { findRoots, markReachable, type Reachable } from './reachability.js';
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

function figures(reach: Reachable, index: ChunkIndex, commits: Iterable<ObjectId>): UsageFigures {
  let logical = 0;
  let n = 0;
  const chunks = new Set<ObjectId>();
  for (const id of commits) {
    if (!reach.live.has(id)) continue;
    n++;
    const tree = reach.trees.get(reach.commits.get(id)!.tree)!;
    for (const e of Object.values(tree.files)) {
      logical += e.size;
      for (const s of reach.manifests.get(e.manifest)!.segments) for (const [c] of s.chunks) chunks.add(c);
    }
  }
  let unique = 0;
  for (const c of chunks) unique += index.get(c)?.raw ?? 0;
  let stored = 0;
  const withBases = new Set<ObjectId>();
  for (const c of chunks) for (let r = index.get(c); r && !withBases.has(r.id); r = r.base ? index.get(r.base) : undefined) withBases.add(r.id);
  for (const c of withBases) stored += index.get(c)!.stored;
  return { commits: n, logical, unique, chunks: stored, dedupRatio: ratio(logical, unique), compressionRatio: ratio(unique, stored) };
}

export async function diskUsage(repo: Repository): Promise<DiskUsage> {
  const index = await repo.store.reloadIndex();
  const reach = await markReachable(repo, await findRoots(repo), index, new Map(), { forDisplay: true });
  const all = figures(reach, index, reach.commits.keys());

  let prunedLogical = 0;
  for (const [id, c] of reach.commits) {
    if (reach.live.has(id)) continue;
    for (const e of Object.values(reach.trees.get(c.tree)!.files)) prunedLogical += e.size;
  }
  const codeChunks = new Set<ObjectId>();
  for (const c of reach.commits.values()) {
    const t = c.code?.files ? reach.trees.get(c.code.files) : undefined;
    for (const e of Object.values(t?.files ?? {})) for (const s of reach.manifests.get(e.manifest)!.segments) for (const [x] of s.chunks) codeChunks.add(x);
  }
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
    disk: await repo.store.diskUsage(),
    branches,
  };
}
