/**
 * Fast-forward checks for push and pull: is one commit in the history of another? Only commits
 * present locally can be walked, so an unknown commit is never an ancestor: a push over a remote
 * value we have not fetched is refused rather than guessed at.
 */
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';

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

export { isAncestor } from '../repo/isAncestor.js';
