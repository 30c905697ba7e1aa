/**
 * Revisions: a full commit id or a unique prefix of at least 4 hex characters, HEAD, a branch, a
 * tag, a remote-tracking ref (origin/main), `latest`, `best:<metric>`, each optionally followed by
 * `~N` or `^` (first parent).
 */
import { CkptError, NotFoundError, UsageError } from '../core/errors.js';
import { isObjectId, type ObjectId } from '../core/objectId.js';
import type { Repository } from './repository.js';
import { bestCommit } from './metricSearch.js';

async function resolveBase(repo: Repository, rev: string): Promise<ObjectId> {
  const refs = repo.store.refs;
  if (rev === 'HEAD' || rev === '@') {
    const id = await repo.headCommit();
    if (!id) throw new NotFoundError('HEAD (no commits yet)', { rev });
    return id;
  }
  if (rev === 'latest') {
    const id = await repo.headCommit();
    if (!id) throw new NotFoundError('latest (no commits yet)', { rev });
    return id;
  }
  if (rev.startsWith('best:')) return bestCommit(repo, rev.slice(5));
  if (isObjectId(rev)) {
    if (!(await repo.store.meta.has(rev))) throw new NotFoundError(`commit ${rev}`, { rev });
    return rev;
  }
  for (const ref of [rev, `refs/heads/${rev}`, `refs/tags/${rev}`, `refs/remotes/${rev}`]) {
    if (!ref.startsWith('refs/')) continue;
    let id: ObjectId | null;
    try {
      id = await refs.read(ref);
    } catch (e) {
      if ((e as CkptError).code === 'E_USAGE') continue;
      throw e;
    }
    if (id) return id;
  }
  if (/^[0-9a-f]{4,63}$/.test(rev)) {
    const found: ObjectId[] = [];
    for (const id of await repo.store.meta.findByPrefix(rev)) {
      try {
        await repo.readCommit(id);
        found.push(id);
      } catch (e) {
        // manifests and trees share the id space; only commits are revisions
        if ((e as CkptError).code !== 'E_NOT_FOUND') throw e;
      }
    }
    if (found.length === 1) return found[0];
    if (found.length > 1) {
      throw new CkptError('E_AMBIGUOUS', `revision ${rev} is ambiguous: ${found.map((f) => f.slice(0, 12)).join(', ')}`, { rev, candidates: found });
    }
  }
  throw new NotFoundError(`revision ${rev}`, { rev });
}

export async function resolveRevision(repo: Repository, rev: string): Promise<ObjectId> {
  const m = /^(.*?)((?:~\d*|\^)*)$/.exec(rev);
  if (!m || !m[1]) throw new UsageError(`invalid revision ${JSON.stringify(rev)}`);
  let id = await resolveBase(repo, m[1]);
  for (const step of m[2].match(/~\d*|\^/g) ?? []) {
    const n = step === '^' || step === '~' ? 1 : Number(step.slice(1));
    for (let i = 0; i < n; i++) {
      const c = await repo.readCommit(id);
      if (c.parents.length === 0) throw new NotFoundError(`${rev}: history has fewer commits`, { rev });
      id = c.parents[0];
    }
  }
  return id;
}
