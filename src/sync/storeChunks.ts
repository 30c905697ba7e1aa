/**
 * Which chunks a store of a copy holds, and where: learnt from its index files (one per pack,
 * named by its hash) each time, never cached, the listing being the truth.
 *
 * The store the command runs in (home) is read through its own chunk index. The other store's
 * index files drive downloads and allocations, so each is checked (pack size, record bounds)
 * before it is used; an index file home holds too (same name, same bytes) is read from home, not
 * carried across.
 */
import { CkptError } from '../core/errors.js';
import { isObjectId, type ObjectId } from '../core/objectId.js';
import { whereIs } from '../backend/backend.js';
import { indexKey, parseKey } from '../backend/objectKeys.js';
import { decodeIndexFile, type ChunkIndex } from '../store/chunkIndex.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { Store } from '../store/store.js';
import { mapLimit } from './parallel.js';

/** One pack as its index file describes it. */
export interface PackListing {
  pack: ObjectId;
  index: ObjectId;
  size: number;
  records: ChunkRecord[];
  /** The index file's bytes, verified against its name. */
  indexBytes: Uint8Array;
}

export interface StoreChunks {
  readonly store: Store;
  has(id: ObjectId): boolean;
  /** The pack and record a chunk is read from. */
  locate(id: ObjectId): { pack: ObjectId; rec: ChunkRecord } | undefined;
  /** The whole listing of a pack that holds some chunk. */
  pack(pack: ObjectId): Promise<PackListing>;
  /** Whether the store holds this index file. */
  hasIndexFile(index: ObjectId): boolean;
}

/** The home store's chunks, through its own index (reloaded: packs others wrote count). */
export async function homeChunks(store: Store): Promise<StoreChunks & { index: ChunkIndex }> {
  const index = await store.reloadIndex();
  const indexFiles = new Set([...index.packs.values()].map((p) => p.index));
  return {
    store,
    index,
    has: (id) => index.has(id),
    locate(id) {
      const rec = index.get(id);
      return rec && { pack: rec.pack, rec };
    },
    async pack(pack) {
      const info = index.packs.get(pack);
      if (!info) throw new CkptError('E_NOT_FOUND', `pack ${pack} is not indexed in ${store.backend.url}`, { pack });
      const indexBytes = await store.backend.get(indexKey(info.index));
      const { records } = decodeIndexFile(indexBytes, whereIs(store.backend, indexKey(info.index)));
      return { pack, index: info.index, size: info.size, records, indexBytes };
    },
    hasIndexFile: (id) => indexFiles.has(id),
  };
}

/**
 * The other store's chunks, from its index files, each checked. With `skipShared`, index files
 * home holds are not read at all (their chunks are home's already: the other store is the
 * source); without, they are read from home (the other store is the destination, and holds them).
 */
export async function awayChunks(store: Store, home: StoreChunks, jobs: number, skipShared: boolean): Promise<StoreChunks> {
  const listed = (await store.backend.list('objects/index/')).flatMap(({ key }) => {
    const p = parseKey(key);
    return p?.kind === 'index' ? [{ key, id: p.name }] : [];
  });
  const names = new Set(listed.map((l) => l.id));
  const todo = skipShared ? listed.filter((l) => !home.hasIndexFile(l.id)) : listed;
  const packs = await mapLimit(todo, jobs, async ({ key, id }): Promise<PackListing> => {
    const from = home.hasIndexFile(id) ? home.store : store;
    const indexBytes = await from.backend.get(key);
    const where = whereIs(from.backend, key);
    const { pack, packSize, records } = decodeIndexFile(indexBytes, where);
    checkRecords(pack, packSize, records, where);
    return { pack, index: id, size: packSize, records, indexBytes };
  });
  const byPack = new Map<ObjectId, PackListing>();
  const where = new Map<ObjectId, { pack: ObjectId; rec: ChunkRecord }>();
  for (const p of packs) {
    if (!byPack.has(p.pack)) byPack.set(p.pack, p);
    for (const rec of p.records) if (!where.has(rec.id)) where.set(rec.id, { pack: p.pack, rec });
  }
  return {
    store,
    has: (id) => where.has(id),
    locate: (id) => where.get(id),
    async pack(pack) {
      const p = byPack.get(pack);
      if (!p) throw new CkptError('E_NOT_FOUND', `pack ${pack} is not indexed in ${store.backend.url}`, { pack });
      return p;
    },
    hasIndexFile: (id) => names.has(id),
  };
}

const isSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
/** A chunk's raw length is at most the largest chunk size; a bit more room for opaque chunks. */
const MAX_RAW = 256 * 1024 * 1024;

/**
 * An index file from another store drives downloads and allocations: its pack size bounds the
 * pack's download, each record's offset and length a byte-range read. All are checked first.
 */
function checkRecords(pack: string, packSize: unknown, records: ChunkRecord[], where: string): void {
  const bad = (detail: string) => new CkptError('E_CORRUPT', `${where}: ${detail}`, { where, pack });
  if (!isObjectId(pack)) throw bad('names no valid pack');
  if (!isSize(packSize)) throw bad(`pack size ${JSON.stringify(packSize)} is not a size`);
  for (const r of records) {
    const ok =
      typeof r.id === 'string' &&
      isObjectId(r.id) &&
      isSize(r.offset) &&
      isSize(r.stored) &&
      isSize(r.raw) &&
      r.raw <= MAX_RAW &&
      r.stored <= MAX_RAW + 1024 * 1024 &&
      r.offset + r.stored <= packSize &&
      Number.isInteger(r.codec) &&
      Number.isInteger(r.planes) &&
      (r.base === undefined || (typeof r.base === 'string' && isObjectId(r.base)));
    if (!ok) throw bad(`chunk record ${JSON.stringify(r).slice(0, 200)} is malformed or lies outside the pack`);
  }
}
