/**
 * Many ranks, one commit. Each rank of a job stores its own files as a part: a commit with no
 * parents that no branch points to, named by the ref `refs/parts/<group>/<rank>` (a gc root, so
 * its chunks survive until the combine). The ref is created by compare-and-swap from absent, so a
 * rank is recorded once. Every rank then looks at the group: when all N parts are there it builds
 * the one tree of every rank's files and moves the branch by compare-and-swap. Several ranks may
 * see the group whole at once; before each swap a rank looks back through the branch for a commit
 * of this group, so only one lands. The part refs are deleted after the combine.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError, RefConflictError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit, CommitMeta, Tree, TreeEntry } from '../core/objects.js';
import { appendCommit } from './appendCommit.js';
import { commitFiles, type CommitOptions, type CommitResult } from './commit.js';
import type { Repository } from './repository.js';

export interface PartSpec {
  group: string;
  rank: number;
  of: number;
}

export interface PartResult {
  group: string;
  rank: number;
  of: number;
  /** The part's own commit (not on any branch). */
  part: ObjectId;
  files: { path: string; manifest: ObjectId; size: number; format: string }[];
  /** Ranks still missing after this one was recorded. */
  missing: number[];
  /** The combined commit, when this process made it or found it made. */
  commit?: ObjectId;
  /** This process moved the branch. */
  combined: boolean;
}

export interface PendingGroup {
  group: string;
  of: number;
  present: number[];
  missing: number[];
}

const GROUP_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,120}$/;
const PREFIX = 'refs/parts/';
/** Commits older than the group's first part by more than this cannot be its combine (clock skew). */
const SKEW_MS = 10 * 60_000;

/** `R/N` as given to --part. */
export function parsePart(text: string, group: string | undefined): PartSpec {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--part expects RANK/COUNT such as 0/4, got ${JSON.stringify(text)}`);
  const rank = Number(m[1]);
  const of = Number(m[2]);
  if (of < 1 || of > 100_000 || rank >= of) throw new UsageError(`--part ${text}: the rank must be below the count (0..${Math.max(0, of - 1)})`);
  if (!group) throw new UsageError('--part needs --group ID (the same for every rank of this checkpoint)');
  if (!GROUP_RE.test(group)) throw new UsageError(`--group ${JSON.stringify(group)}: use letters, digits, '.', '_' and '-'`);
  return { group, rank, of };
}

interface PartInfo {
  rank: number;
  id: ObjectId;
  commit: Commit;
}

function partOf(c: Commit): PartSpec | undefined {
  const p = c.meta.extra?.part as Partial<PartSpec> | undefined;
  return p && typeof p.group === 'string' && typeof p.rank === 'number' && typeof p.of === 'number' ? (p as PartSpec) : undefined;
}

async function readParts(repo: Repository, group: string): Promise<PartInfo[]> {
  const out: PartInfo[] = [];
  for (const [ref, id] of await repo.store.refs.list(`${PREFIX}${group}/`)) {
    const rank = Number(ref.slice(PREFIX.length + group.length + 1));
    if (!Number.isSafeInteger(rank)) continue;
    try {
      out.push({ rank, id, commit: await repo.readCommit(id) });
    } catch (e) {
      // deleted by a combine running beside us: the group is being (or was) committed
      if ((e as CkptError).code !== 'E_NOT_FOUND') throw e;
    }
  }
  return out.sort((a, b) => a.rank - b.rank);
}

/** Stores this rank's files as a part, and makes the commit when every part is there. */
export async function commitPart(repo: Repository, paths: string[], spec: PartSpec, opts: CommitOptions): Promise<PartResult> {
  const meta: CommitMeta = { ...opts.meta, extra: { ...opts.meta?.extra, part: { ...spec } } };
  const ref = `${PREFIX}${spec.group}/${spec.rank}`;
  // the part ref is written before the store lock is released, so no gc sweeps its chunks between
  const record = async (r: CommitResult) => {
    try {
      await repo.store.refs.cas(ref, null, r.id, `part ${spec.rank}/${spec.of} of ${spec.group}`);
    } catch (e) {
      if (!(e instanceof RefConflictError)) throw e;
      if (e.data.actual !== r.id) {
        throw new CkptError('E_EXISTS', `rank ${spec.rank} of group ${spec.group} is already recorded with other files (${String(e.data.actual).slice(0, 12)})`, {
          group: spec.group,
          rank: spec.rank,
        });
      }
    }
  };
  const r = await commitFiles(repo, paths, { ...opts, meta, detached: true, branch: undefined, whileLocked: record });
  const done = await combineParts(repo, spec.group, opts);
  return { ...spec, part: r.id, files: r.files, missing: done.missing, ...(done.commit ? { commit: done.commit } : {}), combined: done.combined };
}

/** Looks back through the branch for the commit of `group`, down to `since`. */
async function findGroupCommit(repo: Repository, head: ObjectId | null, group: string, since: number): Promise<ObjectId | undefined> {
  for (let id = head; id; ) {
    const c = await repo.readCommit(id);
    if (c.meta.extra?.group === group) return id;
    if (c.time < since - SKEW_MS) return undefined;
    id = c.parents[0] ?? null;
  }
  return undefined;
}

/** One tree of every part's files; two ranks may not store different files at one path. */
async function unionTree(repo: Repository, parts: PartInfo[]): Promise<Tree> {
  const files: Record<string, TreeEntry> = {};
  for (const p of parts) {
    const t = await repo.readTree(p.commit.tree);
    for (const [name, e] of Object.entries(t.files)) {
      if (files[name] && files[name].manifest !== e.manifest) {
        throw new UsageError(`ranks of group ${partOf(p.commit)?.group} store different files as ${name}`, { path: name });
      }
      files[name] = e;
    }
  }
  return { type: 'tree', files: Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1))) };
}

function combinedMeta(parts: PartInfo[], group: string, of: number): CommitMeta {
  const meta: CommitMeta = {};
  for (const { commit } of [...parts].reverse()) {
    // rank 0's values win: it is applied last
    const m = commit.meta;
    if (m.step !== undefined) meta.step = m.step;
    if (m.epoch !== undefined) meta.epoch = m.epoch;
    if (m.metrics) meta.metrics = { ...meta.metrics, ...m.metrics };
    if (m.params) meta.params = { ...meta.params, ...m.params };
  }
  meta.extra = { group, parts: of };
  return meta;
}

/** Makes the group's commit if every part is present and no one made it yet. */
export async function combineParts(
  repo: Repository,
  group: string,
  opts: Pick<CommitOptions, 'branch' | 'message' | 'retries'>,
): Promise<{ missing: number[]; commit?: ObjectId; combined: boolean }> {
  const parts = await readParts(repo, group);
  const of = parts.length ? partOf(parts[0].commit)!.of : 0;
  const present = new Set(parts.map((p) => p.rank));
  const missing = Array.from({ length: of }, (_, i) => i).filter((r) => !present.has(r));
  if (parts.length === 0 || missing.length > 0) return { missing, combined: false };
  const mismatch = parts.find((p) => partOf(p.commit)!.of !== of);
  if (mismatch) throw new UsageError(`ranks of group ${group} disagree on the count (${of} and ${partOf(mismatch.commit)!.of})`);

  const treeId = await repo.store.meta.put(await unionTree(repo, parts));
  const since = Math.min(...parts.map((p) => p.commit.time));
  const r = await appendCommit(repo, {
    tree: treeId,
    message: opts.message,
    meta: combinedMeta(parts, group, of),
    branch: opts.branch,
    retries: opts.retries ?? 20,
    existing: (head) => findGroupCommit(repo, head, group, since),
  });
  const commitId = r.id;
  const combined = r.created;
  // the parts are in the branch's history now; their refs only kept them alive until here
  for (const p of parts) await repo.store.refs.cas(`${PREFIX}${group}/${p.rank}`, p.id, null, `combined into ${commitId.slice(0, 12)}`).catch(() => undefined);
  // nor may their reflog keep them: retention of the combined commit must be able to free the data
  await fs.rm(path.join(repo.store.dir, 'logs', ...PREFIX.split('/').filter(Boolean), group), { recursive: true, force: true });
  return { missing: [], commit: commitId, combined };
}

/** Groups with parts recorded but not yet combined, and the ranks they wait for. */
export async function pendingGroups(repo: Repository): Promise<PendingGroup[]> {
  const groups = new Set<string>();
  for (const ref of (await repo.store.refs.list(PREFIX)).keys()) groups.add(ref.slice(PREFIX.length, ref.lastIndexOf('/')));
  const out: PendingGroup[] = [];
  for (const group of [...groups].sort()) {
    const parts = await readParts(repo, group);
    if (parts.length === 0) continue;
    const of = partOf(parts[0].commit)!.of;
    const present = parts.map((p) => p.rank);
    out.push({ group, of, present, missing: Array.from({ length: of }, (_, i) => i).filter((r) => !present.includes(r)) });
  }
  return out;
}
