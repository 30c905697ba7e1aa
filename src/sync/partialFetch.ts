/**
 * Chunks on demand for a partial clone: the copy (copyStore.ts) of just the chunks a checkout
 * needs (and their delta bases) from the remote's store to this one, read from the remote's packs
 * by byte range, nearby records in one request, into local packs whose chunks are each decoded
 * and re-hashed before their index files make them visible. The checkout running it holds this
 * store's shared lock already.
 */
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';
import type { Backend } from '../backend/backend.js';
import { copyStore } from './copyStore.js';
import { checkJobs } from './parallel.js';
import { openRemote, readLocalConfig } from './remoteConfig.js';
import { withRemoteStore } from './remoteStore.js';

export interface PartialFetchResult {
  chunks: number;
  requests: number;
  /** Bytes read from the remote's packs. */
  bytes: number;
}

export async function fetchChunksByRange(
  repo: Repository,
  t: Backend,
  ids: Iterable<ObjectId>,
  opts: { jobs?: number } = {},
): Promise<PartialFetchResult> {
  const jobs = checkJobs(opts.jobs);
  const index = await repo.store.index();
  const need = [...new Set(ids)].filter((id) => !index.has(id));
  if (need.length === 0) return { chunks: 0, requests: 0, bytes: 0 };
  const r = await withRemoteStore(t, repo.store, {}, (remote) =>
    copyStore(remote, repo.store, { home: 'dst', purpose: 'partial fetch', jobs, dstLocked: true, plan: async () => ({ chunks: need }) }),
  );
  return { chunks: r.chunks, requests: r.read.requests, bytes: r.read.bytes };
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
