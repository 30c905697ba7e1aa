/**
 * Fast-forward checks for push and pull: is one commit in the history of another? Only commits
 * present locally can be walked, so an unknown commit is never an ancestor: a push over a remote
 * value we have not fetched is refused rather than guessed at.
 */
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';

export class NonFastForwardError extends CkptError {
  constructor(ref: string, current: ObjectId, next: ObjectId, hint: string) {
    super('E_NON_FAST_FORWARD', `${ref}: ${current.slice(0, 12)} is not an ancestor of ${next.slice(0, 12)} (non-fast-forward); ${hint}`, {
      ref,
      current,
      next,
    });
    this.name = 'NonFastForwardError';
  }
}

export async function isAncestor(repo: Repository, ancestor: ObjectId, descendant: ObjectId): Promise<boolean> {
  if (ancestor === descendant) return true;
  if (!(await repo.store.meta.has(ancestor))) return false;
  const seen = new Set<ObjectId>();
  const stack = [descendant];
  while (stack.length) {
    const id = stack.pop()!;
    if (id === ancestor) return true;
    if (seen.has(id) || !(await repo.store.meta.has(id))) continue;
    seen.add(id);
    stack.push(...(await repo.readCommit(id)).parents);
  }
  return false;
}
