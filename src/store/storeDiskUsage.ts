/**
 * Bytes a store takes on disk, by kind, as the filesystem reports them: one walk of the whole
 * store folder, each file counted in the kind of the folder
 * it lies under (packs, index files, metadata objects) or else as other (refs, logs, locks, tmp,
 * the config and caches).
 */
import { readdirSync, statSync, type Dirent } from 'node:fs';
import * as path from 'node:path';

export interface StoreDiskUsage {
  packs: number;
  index: number;
  meta: number;
  other: number;
  total: number;
}

/**
 * `dir` is the store folder; `packs`, `index` and `meta` the folders of those kinds inside it.
 * Listings and stats are blocking calls: a store not yet gc'd has thousands of small files, and a
 * thread-pool round trip each cost more than the stats themselves.
 */
export async function storeDiskUsage(dir: string, kinds: { packs: string; index: string; meta: string }): Promise<StoreDiskUsage> {
  const parts = [kinds.packs, kinds.index, kinds.meta];
  let total = 0;
  const sums = parts.map(() => 0);
  const walk = (d: string): void => {
    let ents: Dirent[];
    try {
      ents = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        walk(p);
        continue;
      }
      if (!e.isFile()) continue;
      let size = 0;
      try {
        size = statSync(p).size;
      } catch {
        // gone since the listing
      }
      total += size;
      const i = parts.findIndex((x) => p.startsWith(x + path.sep));
      if (i >= 0) sums[i] += size;
    }
  };
  walk(dir);
  const [packs, index, meta] = sums;
  return { packs, index, meta, other: total - packs - index - meta, total };
}
