/**
 * Writing a merge's result: its files' manifests, the tree, and a commit whose first parent is the
 * branch's head and whose further parents are every input, then the branch moved by
 * compare-and-swap (a branch that moved meanwhile fails the merge: its result was computed
 * against the old head, so it is not re-parented silently).
 */
import type { ObjectId } from '../core/objectId.js';
import type { Commit, CommitMeta, Manifest, Tree, TreeEntry } from '../core/objects.js';
import type { Repository } from '../repo/repository.js';

export interface MergeTarget {
  /** The branch ref to move (undefined: HEAD is detached and moves itself). */
  ref: string | undefined;
  /** Its value now (null: the branch has no commit yet). */
  head: ObjectId | null;
}

export async function currentTarget(repo: Repository, into?: string): Promise<MergeTarget> {
  if (into) {
    const ref = `refs/heads/${into}`;
    return { ref, head: await repo.store.refs.read(ref) };
  }
  return { ref: await repo.currentBranch(), head: await repo.headCommit() };
}

/** Parents: the head, then each input not already listed. */
export function mergeParents(head: ObjectId | null, inputs: ObjectId[]): ObjectId[] {
  const out: ObjectId[] = head ? [head] : [];
  for (const i of inputs) if (!out.includes(i)) out.push(i);
  return out;
}

export async function writeMergeCommit(
  repo: Repository,
  target: MergeTarget,
  files: Record<string, Manifest | TreeEntry>,
  parents: ObjectId[],
  message: string,
  meta: CommitMeta,
): Promise<{ id: ObjectId; tree: ObjectId }> {
  const entries: Record<string, TreeEntry> = {};
  for (const [p, f] of Object.entries(files)) {
    if ('type' in f) {
      const id = await repo.store.meta.put(f);
      entries[p] = { manifest: id, size: f.size, hash: f.hash, format: f.format };
    } else entries[p] = f;
  }
  const tree: Tree = { type: 'tree', files: entries };
  const treeId = await repo.store.meta.put(tree);
  const commit: Commit = { type: 'commit', tree: treeId, parents, message, author: repo.author, time: repo.clock(), meta };
  const id = await repo.store.meta.put(commit);
  const reason = `merge: ${message.split('\n')[0]}`;
  if (target.ref) await repo.store.refs.cas(target.ref, target.head, id, reason);
  else await repo.store.refs.writeHead({ kind: 'detached', id });
  return { id, tree: treeId };
}
