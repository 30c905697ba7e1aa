/**
 * Checkpoint averaging over a window of a branch's history: which commits (`last:N`, oldest
 * first) and with what weights (`uniform`, or `minus-sqrt`: the weights that make the average
 * equal to training on with the learning rate decayed by 1 - sqrt over the window, as in WSM).
 */
import { UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { firstParentHistory } from '../repo/metricSearch.js';
import type { Repository } from '../repo/repository.js';

export type Schedule = 'uniform' | 'minus-sqrt';

export function parseWindow(spec: string): number {
  const m = /^last:(\d+)$/.exec(spec);
  const n = m ? Number(m[1]) : NaN;
  if (!m || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`--window expects last:N with N >= 1, got ${JSON.stringify(spec)}`);
  return n;
}

/** The last `n` commits of the first-parent history from `start`, oldest first. */
export async function windowCommits(repo: Repository, start: ObjectId, n: number, rev: string): Promise<ObjectId[]> {
  const out: ObjectId[] = [];
  for await (const { id } of firstParentHistory(repo, start)) {
    out.push(id);
    if (out.length === n) break;
  }
  if (out.length < n) throw new UsageError(`--window last:${n}: ${rev} has only ${out.length} commit(s) in its history`, { have: out.length, want: n });
  return out.reverse();
}

/**
 * Weights for `n` checkpoints, oldest first. minus-sqrt (summing to 1): c_k = sqrt(k/n) -
 * sqrt((k-1)/n), so the suffix sums sum_{i>=k} c_i = 1 - sqrt((k-1)/n) are the 1-sqrt decay.
 */
export function scheduleWeights(schedule: Schedule, n: number): number[] {
  // uniform: equal weights, normalized by their sum, so the result is the plain mean
  if (schedule === 'uniform') return new Array<number>(n).fill(1);
  if (schedule === 'minus-sqrt') return Array.from({ length: n }, (_, i) => Math.sqrt((i + 1) / n) - Math.sqrt(i / n));
  throw new UsageError(`unknown --schedule ${JSON.stringify(schedule)} (uniform or minus-sqrt)`);
}
