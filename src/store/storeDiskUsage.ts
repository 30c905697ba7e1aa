/**
 * Bytes a store takes on disk, by kind, as the filesystem reports them: one walk of the whole
 * store folder with the stats STAT_LIMIT at a time, each file counted in the kind of the folder
 * it lies under (packs, index files, metadata objects) or else as other (refs, logs, locks, tmp,
 * the config and caches).
 */
import { readdir, stat, type Dirent } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { createLimiter } from '../core/limiter.js';

export interface StoreDiskUsage {
  packs: number;
  index: number;
  meta: number;
  other: number;
  total: number;
}

const STAT_LIMIT = 16;
// the callback forms: thousands of loose objects make fs.promises' per-call cost the larger part
const statFile = promisify(stat);
const readdirTyped = (d: string) =>
  new Promise<Dirent[]>((resolve, reject) => readdir(d, { withFileTypes: true }, (e, ents) => (e ? reject(e) : resolve(ents))));

/** `dir` is the store folder; `packs`, `index` and `meta` the folders of those kinds inside it. */
export async function storeDiskUsage(dir: string, kinds: { packs: string; index: string; meta: string }): Promise<StoreDiskUsage> {
  const parts = [kinds.packs, kinds.index, kinds.meta];
  const limit = createLimiter(STAT_LIMIT);
  let total = 0;
  const sums = parts.map(() => 0);
  const walk = async (d: string): Promise<void> => {
    let ents;
    try {
      ents = await limit(() => readdirTyped(d));
    } catch {
      return;
    }
    await Promise.all(
      ents.map(async (e) => {
        const p = path.join(d, e.name);
        if (e.isDirectory()) return walk(p);
        if (!e.isFile()) return;
        const { size } = await limit(() => statFile(p)).catch(() => ({ size: 0 }));
        total += size;
        const i = parts.findIndex((x) => p.startsWith(x + path.sep));
        if (i >= 0) sums[i] += size;
      }),
    );
  };
  await walk(dir);
  const [packs, index, meta] = sums;
  return { packs, index, meta, other: total - packs - index - meta, total };
}
