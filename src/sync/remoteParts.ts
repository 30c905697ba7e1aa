/**
 * Many-rank commits on a remote: each rank commits its part locally and pushes it
 * (`ckpt push REMOTE refs/parts/GROUP/RANK`); the push then runs the same combine as a shared
 * folder does (repo/parts.ts), against the remote: part refs listed and read there, the tree and
 * commit written there, the branch moved by the backend's compare-and-swap (conditional writes
 * on S3) with a reflog entry, so ranks pushing at once make exactly one commit. The pushed part's
 * local ref is dropped afterwards: the remote holds the part now.
 */
import { CorruptObjectError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import { decodeCommit, decodeTree } from '../core/validateMeta.js';
import { combineParts, parsePartRef, partRef, pendingGroups, PARTS_PREFIX, type PartsBackend, type PendingGroup } from '../repo/parts.js';
import type { Repository } from '../repo/repository.js';
import { MetaStore } from '../store/metaStore.js';
import { metaKey } from '../backend/objectKeys.js';
import type { Backend } from '../backend/backend.js';

export function remoteParts(t: Backend, author: string, clock: () => number): PartsBackend {
  // the remote's bytes must hash to the id under the kind asked for, and pass the shape checks
  // fetch applies (validateMeta.ts), before a combine builds on them
  const read = async (id: ObjectId, type: 'commit' | 'tree'): Promise<Uint8Array> => {
    const bytes = await t.get(metaKey(id));
    if (objectId(type, bytes) !== id) throw new CorruptObjectError(id, `remote ${metaKey(id)} (read as a ${type})`);
    return bytes;
  };
  return {
    listParts: async (group) => {
      const out = new Map<number, ObjectId>();
      for (const { key } of await t.list(`${PARTS_PREFIX}${group}/`)) {
        const p = parsePartRef(key);
        const id = p ? await t.readRef(key) : null;
        if (p && id) out.set(p.rank, id);
      }
      return out;
    },
    readCommit: async (id) => decodeCommit(id, await read(id, 'commit'), 'a many-rank combine'),
    readTree: async (id) => decodeTree(id, await read(id, 'tree')),
    put: async (obj) => {
      const { id, bytes } = MetaStore.encode(obj);
      await t.put(metaKey(id), { bytes });
      return id;
    },
    readRef: (ref) => t.readRef(ref),
    // the remote keeps the reflog of its refs, as a local store does of its own
    casRef: (ref, expected, next, reason) => t.casRef(ref, expected, next, { time: clock(), reason }),
    // a branch the remote lacks starts empty there
    startOf: async () => null,
    author,
    clock,
  };
}

export interface PushedPart {
  group: string;
  rank: number;
  missing: number[];
  commit?: ObjectId;
  combined: boolean;
}

/** After a push: combines the groups of the part refs it sent, and drops their local refs. */
export async function combinePushedParts(repo: Repository, t: Backend, pushed: { ref: string; new: ObjectId }[]): Promise<PushedPart[]> {
  const out: PushedPart[] = [];
  const backend = remoteParts(t, repo.author, repo.clock);
  for (const u of pushed) {
    const p = parsePartRef(u.ref);
    if (!p) continue;
    const r = await combineParts(backend, p.group);
    out.push({ group: p.group, rank: p.rank, missing: r.missing, ...(r.commit ? { commit: r.commit } : {}), combined: r.combined });
    await repo.store.refs.cas(partRef(p.group, p.rank), u.new, null, 'pushed').catch(() => undefined);
  }
  return out;
}

/** The remote's groups waiting for ranks. */
export async function remotePendingGroups(t: Backend, repo: Repository): Promise<PendingGroup[]> {
  const groups = (await t.list(PARTS_PREFIX)).map((k) => parsePartRef(k.key)?.group).filter((g): g is string => !!g);
  return pendingGroups(remoteParts(t, repo.author, repo.clock), groups);
}
