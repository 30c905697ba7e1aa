/**
 * The objects a transfer must consider: every commit reachable from some tips that the other
 * side does not have, with their trees, manifests and code trees, and the chunks those name.
 * Both sides write commits last and parents first, so a commit the other side has implies its
 * whole history is there too: the walk stops at it.
 */
import type { ObjectId } from '../core/objectId.js';
import type { Commit, Manifest, Tree } from '../core/objects.js';
import { decodeCommit, decodeManifest, decodeTree } from '../core/validateMeta.js';
import { mapLimit } from './parallel.js';

export interface WalkSource {
  /** Whether the receiving side already has this commit (and so its history). */
  stop(commit: ObjectId): Promise<boolean>;
  /** Verified bytes of a metadata object. */
  read(id: ObjectId): Promise<Uint8Array>;
  /** Commits whose chunks are not wanted (pruned locally). */
  skipChunks?(commit: ObjectId): Promise<boolean>;
}

export interface Walked {
  /** New commits, parents before children. */
  commits: ObjectId[];
  /** Every metadata object of the new commits (commits included), with its bytes. */
  meta: Map<ObjectId, Uint8Array>;
  /** Trees and manifests, in an order where nothing precedes what it names. */
  contents: ObjectId[];
  /** Chunks named by the new commits' manifests. */
  chunks: Set<ObjectId>;
  /** Manifests by id, for callers that pick tensors. */
  manifests: Map<ObjectId, Manifest>;
}

export async function walkNewCommits(tips: Iterable<ObjectId>, src: WalkSource, jobs: number): Promise<Walked> {
  const w: Walked = { commits: [], meta: new Map(), contents: [], chunks: new Set(), manifests: new Map() };
  const commits = new Map<ObjectId, Commit>();
  const seen = new Set<ObjectId>();
  // who named each commit, for an error that says where a wrong kind of object came from
  const namedBy = new Map<ObjectId, string>();
  for (const t of tips) namedBy.set(t, 'a ref');
  let frontier = [...new Set(tips)];
  while (frontier.length) {
    const todo: ObjectId[] = [];
    for (const id of frontier) {
      if (seen.has(id)) continue;
      seen.add(id);
      todo.push(id);
    }
    const fresh = (await mapLimit(todo, jobs, async (id) => ((await src.stop(id)) ? undefined : id))).filter((x): x is ObjectId => !!x);
    const loaded = await mapLimit(fresh, jobs, async (id) => ({ id, bytes: await src.read(id) }));
    frontier = [];
    for (const { id, bytes } of loaded) {
      const c = decodeCommit(id, bytes, namedBy.get(id));
      commits.set(id, c);
      w.meta.set(id, bytes);
      for (const p of c.parents) if (!namedBy.has(p)) namedBy.set(p, `commit ${id} (as a parent)`);
      frontier.push(...c.parents);
    }
  }
  // parents first: depth-first post-order over the new commits
  const placed = new Set<ObjectId>();
  const place = (root: ObjectId) => {
    const stack: { id: ObjectId; expanded: boolean }[] = [{ id: root, expanded: false }];
    while (stack.length) {
      const top = stack.pop()!;
      if (placed.has(top.id)) continue;
      if (top.expanded) {
        placed.add(top.id);
        w.commits.push(top.id);
        continue;
      }
      stack.push({ id: top.id, expanded: true });
      for (const p of commits.get(top.id)!.parents) if (commits.has(p) && !placed.has(p)) stack.push({ id: p, expanded: false });
    }
  };
  for (const id of [...commits.keys()].sort()) place(id);

  const trees: { tree: ObjectId; chunks: boolean; commit: ObjectId }[] = [];
  for (const id of w.commits) {
    const c = commits.get(id)!;
    const skip = (await src.skipChunks?.(id)) ?? false;
    trees.push({ tree: c.tree, chunks: !skip, commit: id });
    if (c.code?.files) trees.push({ tree: c.code.files, chunks: true, commit: id });
  }
  const treeCommit = new Map<ObjectId, ObjectId>();
  for (const t of trees) if (!treeCommit.has(t.tree)) treeCommit.set(t.tree, t.commit);
  const treeObjs = new Map<ObjectId, Tree>();
  const wantTree = new Map<ObjectId, boolean>();
  for (const t of trees) wantTree.set(t.tree, (wantTree.get(t.tree) ?? false) || t.chunks);
  await mapLimit([...wantTree.keys()], jobs, async (id) => {
    const bytes = await src.read(id);
    w.meta.set(id, bytes);
    treeObjs.set(id, decodeTree(id, bytes, treeCommit.get(id)));
  });
  const manifestIds = new Map<ObjectId, boolean>();
  const manifestOf = new Map<ObjectId, string>();
  for (const [id, tree] of treeObjs) {
    for (const [p, e] of Object.entries(tree.files)) {
      manifestIds.set(e.manifest, (manifestIds.get(e.manifest) ?? false) || wantTree.get(id)!);
      if (!manifestOf.has(e.manifest)) manifestOf.set(e.manifest, `entry ${JSON.stringify(p)} of tree ${id}`);
    }
  }
  await mapLimit([...manifestIds.keys()], jobs, async (id) => {
    const bytes = await src.read(id);
    w.meta.set(id, bytes);
    const m = decodeManifest(id, bytes, manifestOf.get(id));
    w.manifests.set(id, m);
    if (manifestIds.get(id)) for (const s of m.segments) for (const [chunk] of s.chunks) w.chunks.add(chunk);
  });
  w.contents = [...manifestIds.keys(), ...treeObjs.keys()];
  return w;
}
