/**
 * A pruned commit's data is gone (the marks themselves: src/store/prunedMarks.ts): reading it
 * is E_PRUNED, naming when and why.
 */
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { PrunedMark } from '../store/prunedMarks.js';
import type { Repository } from './repository.js';

export class PrunedCommitError extends CkptError {
  constructor(id: ObjectId, mark: PrunedMark) {
    super('E_PRUNED', `commit ${id.slice(0, 12)} was pruned at ${new Date(mark.time).toISOString()} (${mark.reason}); its metadata is kept but its data is gone`, {
      id,
      prunedAt: new Date(mark.time).toISOString(),
      reason: mark.reason,
    });
    this.name = 'PrunedCommitError';
  }
}

/** Throws E_PRUNED when the commit's data was dropped. */
export async function assertNotPruned(repo: Repository, id: ObjectId): Promise<void> {
  const mark = await repo.store.pruned.get(id);
  if (mark) throw new PrunedCommitError(id, mark);
}
