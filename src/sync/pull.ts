/**
 * `ckpt pull`: fetch, then fast-forward a local branch to its remote-tracking ref. Histories
 * that diverged are refused (there is no merge of model states); the branch moves only by
 * compare-and-swap, so a commit made meanwhile is never lost.
 */
import { UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';
import { NonFastForwardError, isAncestor } from './ancestry.js';
import { fetchRemote, type FetchOptions, type FetchResult } from './fetch.js';
import type { Backend } from '../backend/backend.js';

export interface PullResult {
  fetch: FetchResult;
  branch: string;
  old: ObjectId | null;
  new: ObjectId;
  status: 'up-to-date' | 'fast-forward' | 'created';
}

export async function pull(
  repo: Repository,
  t: Backend,
  remoteName: string,
  branch: string | undefined,
  opts: Omit<FetchOptions, 'remoteName'> = {},
): Promise<PullResult> {
  const name = branch ?? (await repo.currentBranch())?.replace(/^refs\/heads\//, '');
  if (!name) throw new UsageError('HEAD is detached; name the branch to pull');
  const fetched = await fetchRemote(repo, t, { ...opts, remoteName });
  const theirs = fetched.refs[`refs/heads/${name}`];
  if (!theirs) throw new UsageError(`${t.url} has no branch ${name}`, { branch: name });
  const ref = `refs/heads/${name}`;
  const ours = await repo.store.refs.read(ref);
  const base = { fetch: fetched, branch: ref, old: ours, new: theirs };
  if (ours === theirs || (ours !== null && (await isAncestor(repo, theirs, ours)))) return { ...base, new: ours!, status: 'up-to-date' };
  if (ours !== null && !(await isAncestor(repo, ours, theirs))) {
    throw new NonFastForwardError(ref, ours, theirs, `local and ${remoteName}/${name} have diverged; reset or branch off, then pull`);
  }
  await repo.store.refs.cas(ref, ours, theirs, `pull ${remoteName} ${name}: fast-forward`);
  return { ...base, status: ours === null ? 'created' : 'fast-forward' };
}
