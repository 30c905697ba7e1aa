/**
 * `ckpt push`: send the remote what it lacks, in the store's write order (packs, then their
 * index files, then metadata, then the ref by compare-and-swap), so a push killed at any point
 * leaves the remote readable at its old refs.
 *
 * What the remote has is learnt from its listing each time, never cached; what it lacks is the
 * chunks of the new commits (closed over delta bases) not named by any of its index files. A
 * local pack whose every chunk is missing travels as it is, with its own index file; otherwise
 * the missing records are copied, still encoded, into new packs. Packing is deterministic, and a
 * pack the remote already holds is not sent again, so a re-run after an interruption moves only
 * what is still missing.
 */
import { CkptError, NotFoundError, RefConflictError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from '../repo/repository.js';
import { decodeIndexFile } from '../store/chunkIndex.js';
import { indexKey, metaKey, packKey, parseKey } from '../backend/objectKeys.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { PackWriter } from '../store/packWriter.js';
import type { StagingPacks } from '../store/stagingPacks.js';
import { NonFastForwardError, isAncestor } from './ancestry.js';
import { walkNewCommits } from './commitWalk.js';
import { checkJobs, mapLimit } from './parallel.js';
import { readRemoteIndex } from './remoteIndex.js';
import type { Backend, PutBody } from '../backend/backend.js';

/** New packs are cut at this size: big enough for throughput, small enough to resume cheaply. */
const PUSH_PACK_BYTES = 64 * 1024 * 1024;

export interface PushOptions {
  /** Branch or tag names (or full refs); default the current branch. */
  refs?: string[];
  /** Every branch and tag. */
  all?: boolean;
  force?: boolean;
  jobs?: number;
  /** Remote name, for updating refs/remotes/<name>/* after the push. */
  remoteName?: string;
  /** Bytes of packs, indexes and metadata uploaded so far, of the planned total. */
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

interface Upload {
  packBody: PutBody;
  pack: ObjectId;
  packSize: number;
  indexBody: PutBody;
  index: ObjectId;
}

export async function push(repo: Repository, t: Backend, opts: PushOptions = {}): Promise<PushResult> {
  const lock = await repo.store.lockShared('push');
  try {
    return await pushLocked(repo, t, opts);
  } finally {
    await lock.release();
  }
}

/**
 * Holds the remote store's shared lock (a lock file in a folder remote, a lease from `ckpt
 * serve`) from before the remote is first read until its refs have moved: gc on the remote
 * waits for it, so it cannot mark what is reachable before the ref moves and then sweep the
 * uploads as garbage.
 */
async function pushLocked(repo: Repository, t: Backend, opts: PushOptions): Promise<PushResult> {
  const jobs = checkJobs(opts.jobs);
  const remoteLock = await t.lockShared?.('push');
  try {
    return await pushUnderRemoteLock(repo, t, opts, jobs, () => remoteLock?.check?.());
  } finally {
    await remoteLock?.release();
  }
}

async function pushUnderRemoteLock(repo: Repository, t: Backend, opts: PushOptions, jobs: number, stillLocked: () => void): Promise<PushResult> {
  const store = repo.store;
  const wanted = await selectRefs(repo, opts);
  const result: PushResult = { remote: t.url, updates: [], commits: 0, chunks: 0, packs: { sent: 0, reused: 0, bytes: 0 }, meta: 0 };

  const todo: { ref: string; old: ObjectId | null; next: ObjectId; status: RefUpdateStatus }[] = [];
  for (const [ref, next] of wanted) {
    const old = await t.readRef(ref);
    if (old === next) {
      result.updates.push({ ref, old, new: next, status: 'up-to-date' });
      continue;
    }
    let status: RefUpdateStatus = old === null ? 'created' : 'fast-forward';
    if (old !== null && !(await isAncestor(repo, old, next))) {
      if (!opts.force) throw new NonFastForwardError(ref, old, next, 'fetch and integrate the remote commits first, or push --force');
      status = 'forced';
    }
    todo.push({ ref, old, next, status });
  }
  if (todo.length === 0) return result;

  const remoteMeta = new Set((await t.list('objects/meta/')).map((k) => parseKey(k.key)?.name).filter((x): x is ObjectId => !!x));
  const walked = await walkNewCommits(
    todo.map((u) => u.next),
    {
      stop: async (id) => remoteMeta.has(id),
      read: (id) => store.meta.getRaw(id),
      skipChunks: async (id) => (await repo.store.pruned.get(id)) !== undefined,
    },
    jobs,
  );
  result.commits = walked.commits.length;

  const remotePacks = await readRemoteIndex(store, t, jobs);
  const remoteChunks = new Set<ObjectId>();
  for (const p of remotePacks) for (const r of p.records) remoteChunks.add(r.id);
  const index = await store.reloadIndex();
  const missing = new Set<ObjectId>();
  for (const id of walked.chunks) {
    for (let cur: ObjectId | undefined = id; cur && !remoteChunks.has(cur) && !missing.has(cur); ) {
      const rec = index.get(cur);
      if (!rec) throw new NotFoundError(`chunk ${cur} (the local store lacks it; run \`ckpt fsck\`)`, { id: cur });
      missing.add(cur);
      cur = rec.base;
    }
  }
  result.chunks = missing.size;

  const staging = store.stagingPacks('push');
  try {
    const uploads = await planPacks(repo, missing, staging);
    const metaToSend = [...walked.contents, ...walked.commits].filter((id) => !remoteMeta.has(id));
    const total = uploads.reduce((n, u) => n + u.packSize, 0) + metaToSend.reduce((n, id) => n + walked.meta.get(id)!.byteLength, 0);
    let done = 0;
    const progress = (n: number) => opts.onProgress?.((done += n), total);

    await mapLimit(uploads, jobs, async (u) => {
      if (await t.stat(packKey(u.pack))) result.packs.reused++;
      else {
        await t.put(packKey(u.pack), u.packBody);
        result.packs.sent++;
        result.packs.bytes += u.packSize;
      }
      progress(u.packSize);
      await t.put(indexKey(u.index), u.indexBody);
    });
    // trees and manifests before the commits naming them; commits parents first
    await mapLimit(walked.contents.filter((id) => !remoteMeta.has(id)), jobs, async (id) => {
      await t.put(metaKey(id), { bytes: walked.meta.get(id)! });
      progress(walked.meta.get(id)!.byteLength);
    });
    for (const id of walked.commits) {
      await t.put(metaKey(id), { bytes: walked.meta.get(id)! });
      progress(walked.meta.get(id)!.byteLength);
    }
    result.meta = metaToSend.length;
  } finally {
    await staging.dispose();
  }

  for (const u of todo) {
    // a lease lost while uploading (the client stalled past it) no longer keeps gc out
    stillLocked();
    await swapRef(repo, t, u.ref, u.old, u.next, opts.force ?? false);
    result.updates.push({ ref: u.ref, old: u.old, new: u.next, status: u.status });
    const branch = /^refs\/heads\/(.+)$/.exec(u.ref)?.[1];
    if (opts.remoteName && branch) await setTracking(repo, `refs/remotes/${opts.remoteName}/${branch}`, u.next, `push ${t.url}`);
  }
  return result;
}

/** The remote ref moved since we read it: a fast-forward of it is retried, anything else refused. */
async function swapRef(repo: Repository, t: Backend, ref: string, expected: ObjectId | null, next: ObjectId, force: boolean): Promise<void> {
  let old = expected;
  for (let attempt = 0; ; attempt++) {
    try {
      await t.casRef(ref, old, next);
      return;
    } catch (e) {
      if (!(e instanceof RefConflictError) || attempt >= 3) throw e;
      const actual = (e.data.actual as ObjectId | null) ?? null;
      if (actual === next) return;
      if (actual !== null && !force && !(await isAncestor(repo, actual, next))) {
        throw new NonFastForwardError(ref, actual, next, 'another push landed first; fetch and integrate it, or push --force');
      }
      old = actual;
    }
  }
}

export async function setTracking(repo: Repository, ref: string, id: ObjectId, reason: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const cur = await repo.store.refs.read(ref);
    if (cur === id) return;
    try {
      await repo.store.refs.cas(ref, cur, id, reason);
      return;
    } catch (e) {
      if (!(e instanceof RefConflictError) || attempt >= 3) throw e;
    }
  }
}

/**
 * Groups the missing chunks by the local pack holding them. A pack wholly missing is sent as it
 * is; the rest are copied record by record (stored bytes, codec, planes and base unchanged: no
 * re-encoding) into new packs in `staging`, in pack and offset order, cut at a fixed size.
 */
async function planPacks(repo: Repository, missing: Set<ObjectId>, staging: StagingPacks): Promise<Upload[]> {
  const store = repo.store;
  const index = await store.index();
  const byPack = new Map<ObjectId, ChunkRecord[]>();
  for (const id of missing) {
    const rec = index.get(id)!;
    const list = byPack.get(rec.pack) ?? [];
    list.push(rec);
    byPack.set(rec.pack, list);
  }
  const uploads: Upload[] = [];
  const partial: { pack: ObjectId; recs: ChunkRecord[] }[] = [];
  for (const pack of [...byPack.keys()].sort()) {
    const info = index.packs.get(pack)!;
    const where = store.indexFileLocation(info.index);
    const bytes = await store.readIndexFile(info.index);
    if (!bytes) throw new NotFoundError(`index file ${where} (removed while pushing?)`, { where });
    const own = decodeIndexFile(bytes, where).records;
    const recs = byPack.get(pack)!.sort((a, b) => a.offset - b.offset);
    if (own.every((r) => missing.has(r.id))) {
      uploads.push({ packBody: store.packBody(pack), pack, packSize: info.size, indexBody: store.indexFileBody(info.index), index: info.index });
    } else partial.push({ pack, recs });
  }
  let writer: PackWriter | undefined;
  const finish = async () => {
    const fin = await writer?.finish();
    writer = undefined;
    if (fin) {
      uploads.push({ packBody: staging.packBody(fin.pack), pack: fin.pack, packSize: fin.size, indexBody: staging.indexBody(fin.index), index: fin.index });
    }
  };
  try {
    for (const { pack, recs } of partial) {
      const fh = await store.openPack(pack);
      if (!fh) throw new NotFoundError(`pack ${store.packLocation(pack)} (removed while pushing?)`, { pack });
      try {
        for (const r of recs) {
          const buf = await fh.read(r.offset, r.stored);
          if (buf.length < r.stored) throw new CkptError('E_CORRUPT', `pack ${pack} ends before chunk ${r.id}`, { pack, id: r.id });
          writer ??= staging.newWriter();
          await writer.add({ id: r.id, raw: r.raw, codec: r.codec, planes: r.planes, ...(r.base ? { base: r.base } : {}) }, buf);
          if (writer.bytes >= PUSH_PACK_BYTES) await finish();
        }
      } finally {
        await fh.close();
      }
    }
    await finish();
  } catch (e) {
    await writer?.abort();
    throw e;
  }
  return uploads;
}
