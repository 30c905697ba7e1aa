/**
 * Whether a store holds everything a commit needs: the commit, its tree (and code tree), their
 * manifests, every chunk those name (with delta bases) in an indexed pack that exists, and its
 * parents. `ckpt serve` refuses to point a ref at a commit that fails this, so a push whose
 * uploads were lost (to gc, a crash, a bug) cannot report success over a broken remote.
 */
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { decodeCommit, decodeManifest, decodeTree } from '../core/validateMeta.js';
import { metaKey } from '../backend/objectKeys.js';
import type { ServedStore } from '../store/servedStore.js';

export class IncompleteCommitError extends CkptError {
  constructor(commit: ObjectId, missing: string) {
    super('E_NOT_FOUND', `the remote does not hold all of commit ${commit}: ${missing} is missing`, { commit, missing });
    this.name = 'IncompleteCommitError';
  }
}

export async function assertCommitComplete(served: ServedStore, commit: ObjectId): Promise<void> {
  const store = served.backend;
  const read = async (id: ObjectId, what: string) => {
    try {
      return await store.get(metaKey(id));
    } catch (e) {
      if ((e as CkptError).code === 'E_NOT_FOUND') throw new IncompleteCommitError(commit, `${what} ${id}`);
      throw e;
    }
  };
  const c = decodeCommit(commit, await read(commit, 'commit'), 'the ref update');
  for (const p of c.parents) if (!(await store.stat(metaKey(p)))) throw new IncompleteCommitError(commit, `parent commit ${p}`);
  const index = await served.chunkIndex();
  const packsSeen = new Map<ObjectId, boolean>();
  const packExists = async (pack: ObjectId) => {
    if (!packsSeen.has(pack)) {
      packsSeen.set(pack, await served.hasPack(pack));
    }
    return packsSeen.get(pack)!;
  };
  const checked = new Set<ObjectId>();
  for (const treeId of [c.tree, ...(c.code?.files ? [c.code.files] : [])]) {
    const tree = decodeTree(treeId, await read(treeId, 'tree'), commit);
    for (const [p, e] of Object.entries(tree.files)) {
      if (checked.has(e.manifest)) continue;
      checked.add(e.manifest);
      const m = decodeManifest(e.manifest, await read(e.manifest, `manifest of ${p}:`));
      for (const s of m.segments) {
        for (const [chunk] of s.chunks) {
          for (let cur: ObjectId | undefined = chunk; cur && !checked.has(cur); ) {
            checked.add(cur);
            const rec = index.get(cur);
            if (!rec || !(await packExists(rec.pack))) throw new IncompleteCommitError(commit, `chunk ${cur} of ${p}`);
            cur = rec.base;
          }
        }
      }
    }
  }
}
