/**
 * What a remote holds, learnt from its index files (one per pack, named by its hash). An index
 * file we also have locally is read from disk; only the others travel, and each is verified
 * against its key on receipt. Nothing is cached between runs: the listing is the truth.
 */
import type { ObjectId } from '../core/objectId.js';
import { readFileOrUndefined } from '../store/atomicFile.js';
import { decodeIndexFile } from '../store/chunkIndex.js';
import { parseKey } from '../store/objectKeys.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { Store } from '../store/store.js';
import * as path from 'node:path';
import { objectId } from '../core/objectId.js';
import { mapLimit } from './parallel.js';
import type { Transport } from './transport.js';

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

export async function readRemoteIndex(store: Store, t: Transport, jobs: number): Promise<RemotePack[]> {
  const keys = (await t.list('objects/index/')).map((k) => ({ key: k.key, id: parseKey(k.key)?.name })).filter((k) => k.id);
  return mapLimit(keys, jobs, async ({ key, id }) => {
    const localPath = path.join(store.indexDir, `${id}.idx`);
    const onDisk = await readFileOrUndefined(localPath);
    const local = onDisk !== undefined && objectId('index', onDisk) === id;
    const bytes = local ? onDisk : await t.get(key);
    const { pack, packSize, records } = decodeIndexFile(bytes, local ? localPath : `${t.url}${key}`);
    return { pack, index: id!, packSize, records, indexBytes: bytes, local };
  });
}

/** chunk id -> where the remote keeps it (the first pack listing it). */
export function remoteChunkMap(packs: RemotePack[]): Map<ObjectId, { pack: RemotePack; rec: ChunkRecord }> {
  const out = new Map<ObjectId, { pack: RemotePack; rec: ChunkRecord }>();
  for (const p of packs) for (const rec of p.records) if (!out.has(rec.id)) out.set(rec.id, { pack: p, rec });
  return out;
}
