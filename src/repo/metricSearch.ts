/** Finding commits by metric: `best:val_loss` walks the history of HEAD. */
import { NotFoundError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit } from '../core/objects.js';
import type { Repository } from './repository.js';

export type MetricMode = 'min' | 'max';

/** Lower is better for losses, errors and perplexities; higher for everything else. */
export function defaultMode(metric: string): MetricMode {
  return /(loss|err|error|perplexity|ppl)$/i.test(metric) ? 'min' : 'max';
}

/** First-parent history from `start`, newest first, each commit read by `read`. */
export async function* firstParentHistory(
  repo: Repository,
  start: ObjectId,
  read: (id: ObjectId) => Promise<Commit> = (id) => repo.readCommit(id),
): AsyncGenerator<{ id: ObjectId; commit: Commit }> {
  let id: ObjectId | undefined = start;
  while (id) {
    const commit = await read(id);
    yield { id, commit };
    id = commit.parents[0];
  }
}

export async function bestCommit(repo: Repository, spec: string, mode?: MetricMode): Promise<ObjectId> {
  const [metric, modeText] = spec.split(':');
  const m: MetricMode = mode ?? (modeText === 'min' || modeText === 'max' ? modeText : defaultMode(metric));
  const head = await repo.headCommit();
  if (!head) throw new NotFoundError('best: no commits yet');
  let best: { id: ObjectId; v: number } | undefined;
  for await (const { id, commit } of firstParentHistory(repo, head)) {
    const v = commit.meta.metrics?.[metric];
    if (typeof v !== 'number' || Number.isNaN(v)) continue;
    if (!best || (m === 'min' ? v < best.v : v > best.v)) best = { id, v };
  }
  if (!best) throw new NotFoundError(`a commit with metric ${metric}`, { metric });
  return best.id;
}
