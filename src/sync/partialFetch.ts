/**
 * Chunks on demand for a partial clone: just the records a checkout needs (and their delta
 * bases), read from the remote's packs by byte range, nearby records in one request. The stored
 * bytes go, still encoded, into a local pack; every chunk is decoded and re-hashed before the
 * pack's index makes it visible.
 */
import { NotFoundError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';
import { packKey } from '../backend/objectKeys.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { FinishedPack, PackWriter } from '../store/packWriter.js';
import { checkJobs, mapLimit } from './parallel.js';
import { readRemoteIndex, remoteChunkMap } from './remoteIndex.js';
import { openRemote, readLocalConfig } from './remoteConfig.js';
import type { Backend } from '../backend/backend.js';

/** Records closer than this are read in one request: fewer round trips for a few wasted bytes. */
const MAX_GAP = 256 * 1024;
const MAX_RANGE = 16 * 1024 * 1024;
const PACK_BYTES = 128 * 1024 * 1024;

export interface PartialFetchResult {
  chunks: number;
  requests: number;
  /** Bytes read from the remote's packs. */
  bytes: number;
}

interface Range {
  pack: ObjectId;
  offset: number;
  length: number;
  recs: ChunkRecord[];
}

export async function fetchChunksByRange(
  repo: Repository,
  t: Backend,
  ids: Iterable<ObjectId>,
  opts: { jobs?: number } = {},
): Promise<PartialFetchResult> {
  const jobs = checkJobs(opts.jobs);
  const store = repo.store;
  const index = await store.index();
  const need = [...new Set(ids)].filter((id) => !index.has(id));
  const result: PartialFetchResult = { chunks: 0, requests: 0, bytes: 0 };
  if (need.length === 0) return result;
  const where = remoteChunkMap(await readRemoteIndex(store, t, jobs));
  const wanted = new Map<ObjectId, { pack: ObjectId; rec: ChunkRecord }>();
  const stack = [...need];
  while (stack.length) {
    const id = stack.pop()!;
    if (wanted.has(id) || index.has(id)) continue;
    const hit = where.get(id);
    if (!hit) throw new NotFoundError(`chunk ${id} on ${t.url}`, { id, remote: t.url });
    wanted.set(id, { pack: hit.pack.pack, rec: hit.rec });
    if (hit.rec.base) stack.push(hit.rec.base);
  }
  const ranges: Range[] = [];
  const sorted = [...wanted.values()].sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.rec.offset - b.rec.offset));
  for (const { pack, rec } of sorted) {
    const last = ranges[ranges.length - 1];
    const end = rec.offset + rec.stored;
    if (last && last.pack === pack && rec.offset - (last.offset + last.length) <= MAX_GAP && end - last.offset <= MAX_RANGE) {
      last.length = end - last.offset;
      last.recs.push(rec);
    } else ranges.push({ pack, offset: rec.offset, length: rec.stored, recs: [rec] });
  }

  const staging = store.stagingPacks('partial');
  const finished: FinishedPack[] = [];
  let writer: PackWriter | undefined;
  // ranges arrive in any order; records go into the pack one at a time
  let chain: Promise<void> = Promise.resolve();
  const append = (r: Range, bytes: Uint8Array) => {
    chain = chain.then(async () => {
      for (const rec of r.recs) {
        writer ??= staging.newWriter();
        const stored = bytes.subarray(rec.offset - r.offset, rec.offset - r.offset + rec.stored);
        await writer.add({ id: rec.id, raw: rec.raw, codec: rec.codec, planes: rec.planes, ...(rec.base ? { base: rec.base } : {}) }, stored);
        if (writer.bytes >= PACK_BYTES) {
          const fin = await writer.finish();
          writer = undefined;
          if (fin) finished.push(fin);
        }
      }
    });
    return chain;
  };
  try {
    await mapLimit(ranges, jobs, async (r) => {
      const bytes = await t.get(packKey(r.pack), { offset: r.offset, length: r.length });
      result.requests++;
      result.bytes += bytes.byteLength;
      await append(r, bytes);
    });
    await chain;
    const fin = await writer?.finish();
    writer = undefined;
    if (fin) finished.push(fin);
    // packs move in without their index (invisible), get verified, and only then are indexed
    for (const p of finished) {
      await staging.movePackIn(p.pack);
      index.addPack(p.pack, p.index, p.size, p.records);
    }
    const reader = await store.reader(index);
    try {
      for (const p of finished) for await (const _ of reader.stream(p.records.map((r) => r.id)));
    } catch (e) {
      await store.reloadIndex();
      throw e;
    } finally {
      await reader.close();
    }
    for (const p of finished) {
      await staging.moveIndexIn(p.index);
    }
    result.chunks = wanted.size;
    return result;
  } finally {
    await writer?.abort();
    await staging.dispose();
  }
}

/**
 * The fetcher a checkout uses in a partial clone: chunks come from the first remote marked
 * partial in `.ckpt/config.local`. Undefined when there is none (every chunk is local).
 */
export async function partialFetcher(
  repo: Repository,
  onFetched: (r: PartialFetchResult & { remote: string }) => void = () => undefined,
): Promise<((ids: ObjectId[]) => Promise<void>) | undefined> {
  const local = (await readLocalConfig(repo)).remotes ?? {};
  const name = Object.keys(local).find((n) => local[n].partial && repo.store.config.remotes[n]);
  if (!name) return undefined;
  return async (ids) => {
    const { transport } = await openRemote(repo, name);
    try {
      onFetched({ remote: name, ...(await fetchChunksByRange(repo, transport, ids)) });
    } finally {
      await transport.close?.();
    }
  };
}
