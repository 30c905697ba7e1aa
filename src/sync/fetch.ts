/**
 * `ckpt fetch`: bring what the remote's refs reach and the local store lacks, then move
 * refs/remotes/<remote>/*. The receiving side keeps the store's write order: packs (each
 * verified against its name while it streams, then every chunk re-hashed), then their index
 * files, then trees and manifests, then commits parents first, then refs. A fetch killed at any
 * point leaves the local store as it was, plus at most verified packs without an index, which
 * the next fetch uses instead of downloading them again.
 */
import { NotFoundError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';
import { metaKey, packKey } from '../backend/objectKeys.js';
import { walkNewCommits, type Walked } from './commitWalk.js';
import { checkJobs, mapLimit } from './parallel.js';
import { setTracking } from './push.js';
import { readRemoteIndex, remoteChunkMap, type RemotePack } from './remoteIndex.js';
import type { Backend } from '../backend/backend.js';
import { verifyPackChunks } from './verifyPack.js';

export interface FetchOptions {
  /** Remote name for refs/remotes/<name>/*; without one, only objects are fetched. */
  remoteName?: string;
  jobs?: number;
  /** Metadata only (a partial clone): chunks come later, on demand, by byte range. */
  metadataOnly?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface FetchResult {
  remote: string;
  /** Remote refs as found: refs/heads/x, refs/tags/x. */
  refs: Record<string, ObjectId>;
  updated: { ref: string; old: ObjectId | null; new: ObjectId }[];
  commits: number;
  packs: { fetched: number; reused: number; bytes: number };
  meta: number;
}

export async function fetchRemote(repo: Repository, t: Backend, opts: FetchOptions = {}): Promise<FetchResult> {
  const lock = await repo.store.lockShared('fetch');
  try {
    return await fetchLocked(repo, t, opts);
  } finally {
    await lock.release();
  }
}

async function fetchLocked(repo: Repository, t: Backend, opts: FetchOptions): Promise<FetchResult> {
  const jobs = checkJobs(opts.jobs);
  const store = repo.store;
  // parts of many-rank commits still waiting for ranks are the remote's business, not a fetch's
  const refKeys = (await t.list('refs/')).map((k) => k.key).filter((k) => !k.startsWith('refs/parts/'));
  const refs: Record<string, ObjectId> = {};
  await mapLimit(refKeys, jobs, async (ref) => {
    const id = await t.readRef(ref);
    if (id) refs[ref] = id;
  });
  const result: FetchResult = { remote: t.url, refs, updated: [], commits: 0, packs: { fetched: 0, reused: 0, bytes: 0 }, meta: 0 };

  const walked = await walkNewCommits(
    Object.values(refs),
    {
      stop: (id) => store.meta.has(id),
      read: async (id) => ((await store.meta.has(id)) ? store.meta.getRaw(id) : t.get(metaKey(id))),
    },
    jobs,
  );
  result.commits = walked.commits.length;
  if (!opts.metadataOnly) await fetchChunks(repo, t, walked, jobs, result, opts.onProgress);

  for (const id of walked.contents) {
    if (await store.meta.has(id)) continue;
    await store.meta.putRaw(id, walked.meta.get(id)!);
    result.meta++;
  }
  for (const id of walked.commits) {
    await store.meta.putRaw(id, walked.meta.get(id)!);
    result.meta++;
  }

  for (const [ref, id] of Object.entries(refs).sort()) {
    const branch = /^refs\/heads\/(.+)$/.exec(ref)?.[1];
    const local = branch ? (opts.remoteName ? `refs/remotes/${opts.remoteName}/${branch}` : undefined) : ref;
    if (!local) continue;
    const old = await store.refs.read(local);
    if (old === id) continue;
    // tags are immutable by convention: an existing local tag is left alone, as Git does
    if (!branch && old !== null) continue;
    await setTracking(repo, local, id, `fetch ${t.url}`);
    result.updated.push({ ref: local, old, new: id });
  }
  return result;
}

async function fetchChunks(
  repo: Repository,
  t: Backend,
  walked: Walked,
  jobs: number,
  result: FetchResult,
  onProgress: FetchOptions['onProgress'],
): Promise<void> {
  const store = repo.store;
  const index = await store.reloadIndex();
  const need = [...walked.chunks].filter((id) => !index.has(id));
  if (need.length === 0) return;
  const remotePacks = (await readRemoteIndex(store, t, jobs)).filter((p) => !p.local);
  const where = remoteChunkMap(remotePacks);
  const chosen = new Map<ObjectId, RemotePack>();
  const wanted = new Set<ObjectId>();
  for (const id of need) {
    for (let cur: ObjectId | undefined = id; cur && !index.has(cur) && !wanted.has(cur); ) {
      const hit = where.get(cur);
      if (!hit) throw new NotFoundError(`chunk ${cur} on ${t.url} (the remote is incomplete)`, { id: cur, remote: t.url });
      wanted.add(cur);
      chosen.set(hit.pack.pack, hit.pack);
      cur = hit.rec.base;
    }
  }
  const packs = [...chosen.values()].sort((a, b) => (a.pack < b.pack ? -1 : 1));
  const total = packs.reduce((n, p) => n + p.packSize, 0);
  let done = 0;
  await mapLimit(packs, jobs, async (p) => {
    // a pack file appears only once verified, so one left by an interrupted fetch is good
    const have = (await store.packInfo(p.pack).catch(() => undefined))?.size === p.packSize;
    if (have) result.packs.reused++;
    else {
      // the remote's index file says how big the pack is: a longer answer is cut off there
      await store.receivePack(p.pack, (dest) => t.getToFile(packKey(p.pack), dest, { size: p.packSize }));
      result.packs.fetched++;
      result.packs.bytes += p.packSize;
    }
    onProgress?.((done += p.packSize), total);
  });
  for (const p of packs) index.addPack(p.pack, p.index, p.packSize, p.records);
  const reader = await store.reader(index);
  try {
    await mapLimit(packs, jobs, (p) => verifyPackChunks(store, p.pack, p.records, (id) => reader.read(id)));
  } catch (e) {
    await store.reloadIndex();
    throw e;
  } finally {
    await reader.close();
  }
  for (const p of packs) {
    await store.writeIndexFile(p.index, p.indexBytes);
  }
}
