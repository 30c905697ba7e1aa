/**
 * What `ckpt watch` has committed, kept in the store itself: every commit it makes carries
 * `extra.watch = {source, fingerprint}` (the checkpoint's path and a fingerprint of its files'
 * stat fields), and the commit lands by the branch's compare-and-swap, so the record and the
 * commit are one atomic step. A restarted watcher reads the branch's history back: nothing
 * committed twice, and whatever is not in it is still to do.
 */
import type { CommitMeta } from '../core/objects.js';
import { firstParentHistory } from '../repo/metricSearch.js';
import type { Repository } from '../repo/repository.js';

export interface WatchMark {
  source: string;
  fingerprint: string;
}

export class WatchRecord {
  private readonly done = new Set<string>();

  /** One string per checkpoint state: its source and fingerprint. */
  static key(m: WatchMark): string {
    return `${m.source}\0${m.fingerprint}`;
  }

  static markOf(meta: CommitMeta): WatchMark | undefined {
    const w = meta.extra?.watch as Partial<WatchMark> | undefined;
    return w && typeof w.source === 'string' && typeof w.fingerprint === 'string' ? { source: w.source, fingerprint: w.fingerprint } : undefined;
  }

  /** Reads the marks of the branch's first-parent history (HEAD's branch when none is named). */
  static async load(repo: Repository, branch?: string): Promise<WatchRecord> {
    const r = new WatchRecord();
    const head = branch ? ((await repo.store.refs.read(`refs/heads/${branch}`)) ?? (await repo.headCommit())) : await repo.headCommit();
    if (head) {
      for await (const { commit } of firstParentHistory(repo, head)) {
        const m = WatchRecord.markOf(commit.meta);
        if (m) r.add(m);
      }
    }
    return r;
  }

  has(m: WatchMark): boolean {
    return this.done.has(WatchRecord.key(m));
  }

  add(m: WatchMark): void {
    this.done.add(WatchRecord.key(m));
  }

  get size(): number {
    return this.done.size;
  }
}
