/**
 * What a remote holds, learnt from its index files (one per pack, named by its hash). An index
 * file we also have locally is read from disk; only the others travel, and each is verified
 * against its key on receipt. Nothing is cached between runs: the listing is the truth.
 */
import type { ObjectId } from '../core/objectId.js';
import { decodeIndexFile } from '../store/chunkIndex.js';
import { parseKey } from '../backend/objectKeys.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { Store } from '../store/store.js';
import { isObjectId, objectId } from '../core/objectId.js';
import { CkptError } from '../core/errors.js';
import { mapLimit } from './parallel.js';
import type { Backend } from '../backend/backend.js';

export interface RemotePack {
  pack: ObjectId;
  index: ObjectId;
  packSize: number;
  records: ChunkRecord[];
  /** The index file's bytes, verified against its id. */
  indexBytes: Uint8Array;
  /** Whether this index file is already in the local store. */
  local: boolean;
}

export async function readRemoteIndex(store: Store, t: Backend, jobs: number): Promise<RemotePack[]> {
  const keys = (await t.list('objects/index/')).map((k) => ({ key: k.key, id: parseKey(k.key)?.name })).filter((k) => k.id);
  return mapLimit(keys, jobs, async ({ key, id }) => {
    const localPath = store.indexFileLocation(id!);
    const onDisk = await store.readIndexFile(id!);
    const local = onDisk !== undefined && objectId('index', onDisk) === id;
    const bytes = local ? onDisk : await t.get(key);
    const where = local ? localPath : `${t.url}${key}`;
    const { pack, packSize, records } = decodeIndexFile(bytes, where);
    checkRecords(pack, packSize, records, where);
    return { pack, index: id!, packSize, records, indexBytes: bytes, local };
  });
}

/** chunk id -> where the remote keeps it (the first pack listing it). */
export function remoteChunkMap(packs: RemotePack[]): Map<ObjectId, { pack: RemotePack; rec: ChunkRecord }> {
  const out = new Map<ObjectId, { pack: RemotePack; rec: ChunkRecord }>();
  for (const p of packs) for (const rec of p.records) if (!out.has(rec.id)) out.set(rec.id, { pack: p, rec });
  return out;
}

const isSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;
/** A chunk's raw length is at most the largest chunk size; a bit more room for opaque chunks. */
const MAX_RAW = 256 * 1024 * 1024;

/**
 * An index file from a remote drives downloads and allocations: its pack size bounds the
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
