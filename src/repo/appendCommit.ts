/**
 * Puts a commit of an already stored tree on top of a branch by compare-and-swap, re-parenting
 * onto the new head when another writer moved the branch. `existing` may name a commit that
 * already does the job (looked for again before every swap), so that of several processes racing
 * to make the same commit, exactly one lands.
 */
import { RefConflictError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit, CommitMeta } from '../core/objects.js';
import type { Repository } from './repository.js';

export interface AppendOptions {
  tree: ObjectId;
  message: string;
  meta: CommitMeta;
  /** Branch name; default the branch HEAD is on. A missing branch starts at HEAD. */
  branch?: string;
  retries?: number;
  existing?: (head: ObjectId | null) => Promise<ObjectId | undefined>;
}

export async function appendCommit(repo: Repository, opts: AppendOptions): Promise<{ id: ObjectId; branch: string; created: boolean }> {
  const ref = opts.branch ? `refs/heads/${opts.branch}` : await repo.currentBranch();
  if (!ref) throw new UsageError('HEAD is detached: name a branch to commit onto');
  for (let attempt = 0; ; attempt++) {
    const expected = await repo.store.refs.read(ref);
    const head = expected ?? (opts.branch ? await repo.headCommit() : null);
    const found = opts.existing ? await opts.existing(head) : undefined;
    if (found) return { id: found, branch: ref, created: false };
    const commit: Commit = {
      type: 'commit',
      tree: opts.tree,
      parents: head ? [head] : [],
      message: opts.message,
      author: repo.author,
      time: repo.clock(),
      meta: opts.meta,
    };
    const id = await repo.store.meta.put(commit);
    try {
      await repo.store.refs.cas(ref, expected, id, `commit: ${opts.message.split('\n')[0]}`);
      return { id, branch: ref, created: true };
    } catch (e) {
      if (!(e instanceof RefConflictError) || attempt >= (opts.retries ?? 20)) throw e;
    }
  }
}
