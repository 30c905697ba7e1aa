/**
 * `ckpt fetch`: the copy (copyStore.ts) from the remote's store to this one, of what the remote's
 * branches and tags reach, every chunk re-hashed on receipt before its index file makes it
 * visible; then refs/remotes/<remote>/* and new tags move here. A fetch killed at any point leaves
 * this store at its old refs, plus at most verified packs without an index file, which the next
 * fetch uses instead of downloading them again.
 */
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';
import type { Backend } from '../backend/backend.js';
import type { Store } from '../store/store.js';
import { copyStore, type RefMove } from './copyStore.js';
import { checkJobs, mapLimit } from './parallel.js';
import { withRemoteStore } from './remoteStore.js';

export interface FetchOptions {
  /** Remote name for refs/remotes/<name>/*; without one, only objects (and new tags) are fetched. */
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
  /** Packs received (whole, or built here from byte ranges of the remote's), those already here, and their bytes. */
  packs: { fetched: number; reused: number; bytes: number };
  meta: number;
}

/**
 * The remote's branches and tags. Remote-tracking refs are its own business, and so are parts
 * of many-rank commits still waiting for ranks.
 */
async function sharedRefs(remote: Store, jobs: number): Promise<Record<string, ObjectId>> {
  const names = (await remote.backend.list('refs/')).map((k) => k.key).filter((k) => /^refs\/(heads|tags)\//.test(k));
  const refs: Record<string, ObjectId> = {};
  await mapLimit(names, jobs, async (ref) => {
    const id = await remote.refs.read(ref);
    if (id) refs[ref] = id;
  });
  return refs;
}

export async function fetchRemote(repo: Repository, t: Backend, opts: FetchOptions = {}): Promise<FetchResult> {
  const jobs = checkJobs(opts.jobs);
  const store = repo.store;
  let refs: Record<string, ObjectId> = {};
  const copied = await withRemoteStore(t, store, {}, (remote) =>
    copyStore(remote, store, {
      home: 'dst',
      purpose: 'fetch',
      jobs,
      onProgress: opts.onProgress,
      plan: async () => {
        refs = await sharedRefs(remote, jobs);
        const moves: RefMove[] = [];
        for (const [ref, id] of Object.entries(refs).sort()) {
          const branch = /^refs\/heads\/(.+)$/.exec(ref)?.[1];
          const local = branch ? (opts.remoteName ? `refs/remotes/${opts.remoteName}/${branch}` : undefined) : ref;
          if (!local) continue;
          const old = await store.refs.read(local);
          if (old === id) continue;
          // tags are immutable by convention: an existing local tag is left alone, as Git does
          if (!branch && old !== null) continue;
          moves.push({ ref: local, expected: old, next: id, reason: `fetch ${t.url}`, onConflict: async () => (branch ? 'retry' : 'skip') });
        }
        return { commits: Object.values(refs), metadataOnly: opts.metadataOnly, refs: moves };
      },
    }),
  );
  return {
    remote: t.url,
    refs,
    updated: copied.refs.map((u) => ({ ref: u.ref, old: u.old, new: u.next })),
    commits: copied.commits,
    packs: { fetched: copied.packs.whole + copied.packs.built, reused: copied.packs.reused, bytes: copied.packs.bytes },
    meta: copied.meta,
  };
}
