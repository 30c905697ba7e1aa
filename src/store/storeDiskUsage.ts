/**
 * Bytes a store takes on disk, by kind, as the filesystem reports them: one walk of the whole
 * store folder, each file counted in the kind of the folder
 * it lies under (packs, index files, metadata objects) or else as other (refs, logs, locks, tmp,
 * the config and caches).
 *
 * Packs, index files and metadata objects are named by the hash of their bytes and never change:
 * their sizes can come from `known` (the usage cache, by kind and id), so a long history costs
 * a listing of names instead of a stat per file. Sizes stat'ed here go into `seen`.
 */
import { lstatSync, readdirSync, statSync, type Dirent } from 'node:fs';
import * as path from 'node:path';
import type { SizedKind } from './usageCache.js';

export interface StoreDiskUsage {
  packs: number;
  index: number;
  meta: number;
  other: number;
  total: number;
}

/** Length of the id part of a file's name, and what follows it. */
const SHAPE: Record<SizedKind, [number, string]> = { pack: [64, '.pack'], index: [64, '.idx'], meta: [62, ''] };

/** kind -> id -> bytes, of content-addressed files written before. */
export type KnownSizes = ReadonlyMap<SizedKind, { get(id: string): number | undefined }>;

/**
 * `dir` is the store folder; `packs`, `index` and `meta` the folders of those kinds inside it.
 * Listings and stats are blocking calls: a store not yet gc'd has thousands of small files, and a
 * thread-pool round trip each cost more than the stats themselves.
 */
export async function storeDiskUsage(dir: string, kinds: { packs: string; index: string; meta: string }, sizes?: KnownSizes): Promise<StoreDiskUsage> {
  const parts = [kinds.packs, kinds.index, kinds.meta];
  const sums = [0, 0, 0];
  let other = 0;
  const stat = (p: string): number => {
    try {
      return statSync(p).size;
    } catch {
      return 0; // gone since the listing
    }
  };
  const list = (d: string): Dirent[] => {
    try {
      return readdirSync(d, { withFileTypes: true });
    } catch {
      return [];
    }
  };
  /**
   * A folder of content-addressed files of `kind` (meta: a fan-out folder, `prefix` its name).
   * Names only: a name whose size is known is a file written before; anything else is stat'ed
   * (and walked when a folder).
   */
  const walkKind = (d: string, part: number, kind: SizedKind, prefix: string): void => {
    const known = sizes?.get(kind);
    const [idLength, suffix] = SHAPE[kind];
    const named = kind === 'meta' ? prefix.length === 2 : prefix === '';
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    let sum = 0;
    for (const name of names) {
      // a content-addressed name: its size is known when it was written by this store
      const size = known && named && name.length === idLength + suffix.length && name.endsWith(suffix) ? known.get(prefix + name.slice(0, idLength)) : undefined;
      if (size !== undefined) {
        sum += size;
        continue;
      }
      const p = path.join(d, name);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue; // gone since the listing
      }
      if (st.isDirectory()) walkKind(p, part, kind, kind === 'meta' && prefix === '' && /^[0-9a-f]{2}$/.test(name) ? name : '-');
      else if (st.isFile()) sum += st.size;
    }
    sums[part] += sum;
  };
  const walk = (d: string): void => {
    for (const e of list(d)) {
      const p = path.join(d, e.name);
      const part = parts.indexOf(p);
      if (e.isDirectory()) {
        if (part >= 0) walkKind(p, part, (['pack', 'index', 'meta'] as const)[part], '');
        else walk(p);
        continue;
      }
      if (!e.isFile()) continue;
      other += stat(p);
    }
  };
  walk(dir);
  const [packs, index, meta] = sums;
  return { packs, index, meta, other, total: packs + index + meta + other };
}
