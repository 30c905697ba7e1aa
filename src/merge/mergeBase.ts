/**
 * The merge base of commits, as Git finds it: a common ancestor that is not an ancestor of another
 * common ancestor (a "best" one); of several, the newest. Walks every parent, not only the first.
 */
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';

/** Every commit reachable from `start` (itself included). */
export async function ancestors(repo: Repository, start: ObjectId): Promise<Set<ObjectId>> {
  const seen = new Set<ObjectId>();
  const stack = [start];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    stack.push(...(await repo.readCommit(id)).parents);
  }
  return seen;
}

/** The best common ancestor of two commits, or null when their histories never meet. */
export async function mergeBase(repo: Repository, a: ObjectId, b: ObjectId): Promise<ObjectId | null> {
  const fromA = await ancestors(repo, a);
  const common = [...(await ancestors(repo, b))].filter((id) => fromA.has(id));
  if (common.length === 0) return null;
  // drop every common ancestor that another one descends from
  const below = new Set<ObjectId>();
  for (const c of common) {
    if (below.has(c)) continue;
    for (const p of await ancestors(repo, c)) if (p !== c) below.add(p);
  }
  const best = common.filter((c) => !below.has(c));
  let pick = best[0];
  let pickTime = (await repo.readCommit(pick)).time;
  for (const c of best.slice(1)) {
    const t = (await repo.readCommit(c)).time;
    if (t > pickTime || (t === pickTime && c < pick)) {
      pick = c;
      pickTime = t;
    }
  }
  return pick;
}

/** The merge base of several commits: folded pairwise, null as soon as two have none. */
export async function mergeBaseOfAll(repo: Repository, ids: ObjectId[]): Promise<ObjectId | null> {
  let base: ObjectId | null = ids[0] ?? null;
  for (const id of ids.slice(1)) {
    if (!base) return null;
    base = await mergeBase(repo, base, id);
  }
  return base;
}
