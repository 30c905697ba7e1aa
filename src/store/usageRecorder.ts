/**
 * What this process wrote that `ckpt du` wants to know (usageCache.ts): the manifests' chunk ids,
 * the trees' sizes and manifests, the sizes of the files written. Each write of a commit object
 * records the commit and everything gathered since the last one in the usage cache.
 */
import type { ObjectId } from '../core/objectId.js';
import type { Commit, Manifest, MetaObject, Tree } from '../core/objects.js';
import { emptyUsage, isEmptyUsage, type SizedKind, type UsageCache, type UsageEntries } from './usageCache.js';

/** Trees kept to describe the commits that name them (a commit names the tree written just before it). */
const MAX_TREES = 64;

export class UsageRecorder {
  private pending: UsageEntries = emptyUsage();
  private readonly trees = new Map<ObjectId, { logical: number; manifests: ObjectId[] }>();

  constructor(private readonly cache: UsageCache) {}

  /** A file of `kind` was written with `bytes` bytes. */
  size(kind: SizedKind, id: ObjectId, bytes: number): void {
    this.pending.sizes.get(kind)!.set(id, bytes);
  }

  /**
   * A metadata object was written (`bytes` long). A commit is recorded with what was gathered,
   * its tree read through `readTree` when this process did not write it.
   */
  async wrote(id: ObjectId, obj: MetaObject, bytes: number, readTree: (id: ObjectId) => Promise<Tree>): Promise<void> {
    this.size('meta', id, bytes);
    if (obj.type === 'manifest') {
      const chunks: ObjectId[] = [];
      for (const s of (obj as Manifest).segments) for (const [c] of s.chunks) chunks.push(c);
      this.pending.manifests.set(id, chunks);
    } else if (obj.type === 'tree') {
      const t = obj as Tree;
      let logical = 0;
      const manifests: ObjectId[] = [];
      for (const e of Object.values(t.files)) {
        logical += e.size;
        manifests.push(e.manifest);
      }
      if (this.trees.size >= MAX_TREES) this.trees.delete(this.trees.keys().next().value!);
      this.trees.set(id, { logical, manifests });
    } else if (obj.type === 'commit') {
      const c = obj as Commit;
      const tree = async (tid: ObjectId) => {
        const had = this.trees.get(tid);
        if (had) return had;
        const t = await readTree(tid);
        return { logical: Object.values(t.files).reduce((n, e) => n + e.size, 0), manifests: Object.values(t.files).map((e) => e.manifest) };
      };
      try {
        const t = await tree(c.tree);
        const code = c.code?.files ? (await tree(c.code.files)).manifests : [];
        this.pending.commits.set(id, { parents: [...c.parents], logical: t.logical, manifests: t.manifests, code });
      } catch {
        // a tree that cannot be read: du reads the objects themselves
      }
      await this.flush();
    }
  }

  /** Writes what was gathered to the usage cache. */
  async flush(): Promise<void> {
    if (isEmptyUsage(this.pending)) return;
    const fresh = this.pending;
    this.pending = emptyUsage();
    await this.cache.record(fresh).catch(() => undefined);
  }
}
