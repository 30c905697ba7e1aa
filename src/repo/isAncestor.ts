/**
 * Is one commit in the history of another? Only commits present locally can be walked, so an
 * unknown commit is never an ancestor. Push and pull refuse non-fast-forwards with it; merge uses
 * it to recognise a fast-forward.
 */
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from './repository.js';

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
