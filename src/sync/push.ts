/**
 * `ckpt push`: the copy (copyStore.ts) from this store to the remote's, moving the remote's refs
 * last, each by compare-and-swap with a reflog entry. A ref that is not a fast-forward of the
 * remote's is refused unless forced, and so is one that another push moved meanwhile to a commit
 * this store does not have in its history. Branches pushed move refs/remotes/<remote>/* here.
 */
import { CkptError, NotFoundError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';
import type { Backend } from '../backend/backend.js';
import { NonFastForwardError, isAncestor } from './ancestry.js';
import { copyStore, moveRef } from './copyStore.js';
import { checkJobs } from './parallel.js';
import { withRemoteStore } from './remoteStore.js';

export interface PushOptions {
  /** Branch or tag names (or full refs); default the current branch. */
  refs?: string[];
  /** Every branch and tag. */
  all?: boolean;
  force?: boolean;
  jobs?: number;
  /** Remote name, for updating refs/remotes/<name>/* after the push. */
  remoteName?: string;
  /** Bytes of packs, ranges and metadata sent so far, of the planned total. */
  onProgress?: (done: number, total: number) => void;
}

export type RefUpdateStatus = 'up-to-date' | 'created' | 'fast-forward' | 'forced';

export interface PushResult {
  remote: string;
  updates: { ref: string; old: ObjectId | null; new: ObjectId; status: RefUpdateStatus }[];
  commits: number;
  chunks: number;
  /** Packs uploaded, and those the remote already had from an interrupted run. */
  packs: { sent: number; reused: number; bytes: number };
  meta: number;
}

/** A branch or tag name, or a full ref, as the local ref it names. */
export async function localRef(repo: Repository, name: string): Promise<{ ref: string; id: ObjectId }> {
  const candidates = name.startsWith('refs/') ? [name] : [`refs/heads/${name}`, `refs/tags/${name}`];
  for (const ref of candidates) {
    let id: ObjectId | null = null;
    try {
      id = await repo.store.refs.read(ref);
    } catch (e) {
      if ((e as CkptError).code !== 'E_USAGE') throw e;
    }
    if (id) return { ref, id };
  }
  throw new NotFoundError(`branch or tag ${name}`, { name });
}

async function selectRefs(repo: Repository, opts: PushOptions): Promise<Map<string, ObjectId>> {
  const out = new Map<string, ObjectId>();
  if (opts.all) {
    for (const prefix of ['refs/heads/', 'refs/tags/']) for (const [ref, id] of await repo.store.refs.list(prefix)) out.set(ref, id);
    return out;
  }
  const names = opts.refs?.length ? opts.refs : [];
  if (names.length === 0) {
    const branch = await repo.currentBranch();
    if (!branch) throw new UsageError('HEAD is detached; name a branch or tag to push');
    names.push(branch);
  }
  for (const n of names) {
    const { ref, id } = await localRef(repo, n);
    if (!/^refs\/(heads|tags|parts)\//.test(ref)) throw new UsageError(`only branches, tags and parts can be pushed, not ${ref}`);
    out.set(ref, id);
  }
  return out;
}

export async function push(repo: Repository, t: Backend, opts: PushOptions = {}): Promise<PushResult> {
  const jobs = checkJobs(opts.jobs);
  const wanted = await selectRefs(repo, opts);
  const result: PushResult = { remote: t.url, updates: [], commits: 0, chunks: 0, packs: { sent: 0, reused: 0, bytes: 0 }, meta: 0 };
  const status = new Map<string, RefUpdateStatus>();
  const copied = await withRemoteStore(t, repo.store, { create: true }, (remote) =>
    copyStore(repo.store, remote, {
      home: 'src',
      purpose: 'push',
      jobs,
      onProgress: opts.onProgress,
      // the remote's refs are read under its lock, so gc there cannot drop what they name meanwhile
      plan: async () => {
        const moves = [];
        for (const [ref, next] of wanted) {
          const old = await remote.refs.read(ref);
          if (old === next) {
            result.updates.push({ ref, old, new: next, status: 'up-to-date' });
            continue;
          }
          let s: RefUpdateStatus = old === null ? 'created' : 'fast-forward';
          if (old !== null && !(await isAncestor(repo, old, next))) {
            if (!opts.force) throw new NonFastForwardError(ref, old, next, 'fetch and integrate the remote commits first, or push --force');
            s = 'forced';
          }
          status.set(ref, s);
          moves.push({
            ref,
            expected: old,
            next,
            reason: `push by ${repo.author}`,
            // another push landed first: moving on from it is still a fast-forward, or refused
            onConflict: async (actual: ObjectId | null) => {
              if (actual !== null && !opts.force && !(await isAncestor(repo, actual, next))) {
                throw new NonFastForwardError(ref, actual, next, 'another push landed first; fetch and integrate it, or push --force');
              }
              return 'retry' as const;
            },
          });
        }
        return { commits: moves.map((m) => m.next), refs: moves };
      },
    }),
  );
  result.commits = copied.commits;
  result.chunks = copied.chunks;
  result.packs = { sent: copied.packs.whole + copied.packs.built, reused: copied.packs.reused, bytes: copied.packs.bytes };
  result.meta = copied.meta;
  for (const u of copied.refs) {
    result.updates.push({ ref: u.ref, old: u.old, new: u.next, status: status.get(u.ref)! });
    const branch = /^refs\/heads\/(.+)$/.exec(u.ref)?.[1];
    if (opts.remoteName && branch) await setTracking(repo, `refs/remotes/${opts.remoteName}/${branch}`, u.next, `push ${t.url}`);
  }
  return result;
}

/** Moves a remote-tracking ref of this store to `id`, whatever it held. */
export async function setTracking(repo: Repository, ref: string, id: ObjectId, reason: string): Promise<void> {
  const cur = await repo.store.refs.read(ref);
  if (cur === id) return;
  await moveRef(repo.store.refs, { ref, expected: cur, next: id, reason, onConflict: async () => 'retry' });
}
