/**
 * How gc lays out delta chains: the newest version is stored whole, older ones as deltas against
 * newer ones (as git's packs do), and no kept chunk is coded against a chunk no kept commit needs.
 *
 * At commit time each new chunk is coded against its parent's chunk, so the commit a run resumes
 * from sits at the end of the longest chain, and a dropped version stays on disk as a base. gc
 * turns that around. A lineage is the run of versions of one chunk position (same file, tensor,
 * dtype, shape and chunk index) along a branch's first-parent history, newest first: its newest
 * chunk is stored whole and each older one coded against the next newer one. Links to chunks
 * that no kept commit names are short-cut to the nearest kept chunk further along, and a chain
 * longer than the configured bound is cut by storing a chunk whole (a keyframe).
 *
 * The plan is acyclic: chunks are visited in one order (the current branch's lineages first) and
 * each is given a base once, on its first visit, always a chunk visited before it; chunks in no
 * lineage keep their stored base, which was written before them and is never planned to point
 * back at them. Frozen chunks (in packs newer than the gc) keep their stored base whatever it
 * is, so a frozen chunk is never planned as a base in a lineage, and any planned base whose
 * chain leads back to the chunk being re-coded is dropped (the chunk is stored whole).
 */
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { ChunkIndex } from '../store/chunkIndex.js';

export interface ChainPlan {
  /** Chunks whose stored form must change, with the base each is to be coded against (undefined: whole). */
  changed: Map<ObjectId, ObjectId | undefined>;
  /** Every chunk the store must keep: the direct ones and the bases the plan codes them against. */
  keep: Set<ObjectId>;
}

/**
 * `lineages`: versions of each chunk position, newest first, most important branch first.
 * `direct`: every chunk a kept commit or code tree names. `frozen`: chunks whose stored form may
 * not change (packs gc must not touch); they keep their old chains.
 */
export function planChains(
  lineages: Iterable<ObjectId[]>,
  direct: Set<ObjectId>,
  index: ChunkIndex,
  maxDepth: number,
  frozen: (id: ObjectId) => boolean = () => false,
): ChainPlan {
  const oldBase = (id: ObjectId) => index.get(id)?.base;
  // 1. each lineage newest first: the first version whole, each older one against the one before
  const plan = new Map<ObjectId, ObjectId | undefined>();
  for (const lineage of lineages) {
    let prev: ObjectId | undefined;
    for (const id of lineage) {
      if (id === prev) continue;
      const rec = index.get(id);
      // a frozen chunk keeps its stored base, which may be this very chunk: it ends the lineage
      // as a base, so the next older version starts again whole
      const usable = prev !== undefined && !frozen(prev) && index.get(prev)?.raw === rec?.raw;
      if (rec && !plan.has(id) && !frozen(id)) plan.set(id, usable ? prev : undefined);
      prev = id;
    }
  }
  const planned = (id: ObjectId) => (plan.has(id) ? plan.get(id) : oldBase(id));

  // 2. short-cut links through chunks nobody keeps; 3. bound the depth
  const base = new Map<ObjectId, ObjectId | undefined>();
  const depth = new Map<ObjectId, number>();
  const visiting = new Set<ObjectId>();
  const resolve = (x: ObjectId): number => {
    const known = depth.get(x);
    if (known !== undefined) return known;
    if (visiting.has(x)) throw new CkptError('E_CORRUPT', `delta chain through ${x} loops`, { id: x });
    visiting.add(x);
    let b: ObjectId | undefined;
    let d = 0;
    if (frozen(x)) {
      // an untouchable chunk keeps its chain exactly as stored
      b = oldBase(x);
      d = b ? resolveFrozen(b) + 1 : 0;
    } else {
      b = planned(x);
      for (let hops = 0; b && !direct.has(b); hops++) {
        if (hops > index.size) throw new CkptError('E_CORRUPT', `delta chain through ${x} loops`, { id: x });
        b = planned(b);
      }
      if (b) {
        d = resolve(b) + 1;
        // a base whose chain leads back to x (through a frozen chunk's stored chain) would make a
        // cycle, so x is stored whole instead
        if (d > maxDepth || leadsTo(b, x)) {
          b = undefined;
          d = 0;
        }
      }
    }
    visiting.delete(x);
    base.set(x, b);
    depth.set(x, d);
    return d;
  };
  // the chain b ends up with: resolved links as planned, the rest (frozen chains) as stored
  const leadsTo = (b: ObjectId, x: ObjectId): boolean => {
    let hops = 0;
    for (let c: ObjectId | undefined = b; c; c = base.has(c) ? base.get(c) : oldBase(c)) {
      if (c === x) return true;
      if (++hops > index.size) throw new CkptError('E_CORRUPT', `delta chain through ${b} loops`, { id: b });
    }
    return false;
  };
  // the old chain of a frozen chunk is kept whole, whatever the plan says about its links
  const frozenDepth = new Map<ObjectId, number>();
  const resolveFrozen = (x: ObjectId): number => {
    let d = frozenDepth.get(x);
    if (d === undefined) {
      const b = oldBase(x);
      d = b && index.has(b) ? resolveFrozen(b) + 1 : 0;
      frozenDepth.set(x, d);
    }
    return d;
  };
  for (const x of direct) if (index.has(x)) resolve(x);

  const changed = new Map<ObjectId, ObjectId | undefined>();
  const keep = new Set<ObjectId>(direct);
  // A delta whose base changes (or that becomes whole) is re-coded. A chunk stored whole gets a
  // base only when that base is itself re-coded now (a chain being turned around): a chunk left
  // whole because its delta did not pay is not tried again by every gc.
  for (const [x, b] of base) if (b !== oldBase(x) && oldBase(x) !== undefined) changed.set(x, b);
  for (const [x, b] of base) if (b !== undefined && oldBase(x) === undefined && changed.has(b)) changed.set(x, b);
  for (const [x, b] of base) {
    if (frozen(x)) for (let c = oldBase(x); c && !keep.has(c); c = oldBase(c)) keep.add(c);
    else if (b) keep.add(b);
  }
  return { changed, keep };
}
