/** `ckpt log`: first-parent history with steps and metrics. */
import type { ObjectId } from '../core/objectId.js';
import type { Commit } from '../core/objects.js';
import { firstParentHistory } from './metricSearch.js';
import type { Repository } from './repository.js';
import { resolveRevision } from './resolveRevision.js';

export interface LogEntry {
  id: ObjectId;
  commit: Commit;
  /** Branches and tags pointing here. */
  refs: string[];
}

export async function refsByCommit(repo: Repository): Promise<Map<ObjectId, string[]>> {
  const out = new Map<ObjectId, string[]>();
  for (const prefix of ['refs/heads/', 'refs/tags/', 'refs/remotes/']) {
    for (const [ref, id] of await repo.store.refs.list(prefix)) {
      const short = ref.replace(/^refs\/(heads|tags|remotes)\//, prefix === 'refs/tags/' ? 'tag: ' : '');
      out.set(id, [...(out.get(id) ?? []), short]);
    }
  }
  return out;
}

export async function log(repo: Repository, rev = 'HEAD', limit = Infinity): Promise<LogEntry[]> {
  if (rev === 'HEAD' && !(await repo.headCommit())) return [];
  const start = await resolveRevision(repo, rev);
  const names = await refsByCommit(repo);
  const out: LogEntry[] = [];
  // a display of history: through the store's commit cache (one file, not one per commit)
  for await (const { id, commit } of firstParentHistory(repo, start, (c) => repo.store.meta.getCommitForHistory(c))) {
    if (out.length >= limit) break;
    out.push({ id, commit, refs: names.get(id) ?? [] });
  }
  return out;
}
