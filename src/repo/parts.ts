/**
 * Many ranks, one commit. Each rank of a job stores its own files as a part: a commit with no
 * parents that no branch points to, named by the ref `refs/parts/<group>/<rank>` (a gc root, so
 * its chunks survive until the combine). The ref is created by compare-and-swap from absent, so a
 * rank is recorded once. Every rank then looks at the group: when all N parts are there it builds
 * the one tree of every rank's files and moves the branch by compare-and-swap. Several ranks may
 * see the group whole at once; before each swap a rank looks back through the branch for a commit
 * of these very parts (their ids are recorded in it), so only one lands. Parts of different runs
 * (attempt ids) never combine. The part refs are deleted after the combine.
 *
 * The combine is written against PartsBackend, so it runs the same on the local store (a shared
 * folder every rank opens) and on a remote (each rank pushes its part, remoteParts.ts).
 */
import { CkptError, RefConflictError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit, CommitMeta, MetaObject, Tree, TreeEntry } from '../core/objects.js';
import { commitFiles, type CommitOptions, type CommitResult } from './commit.js';
import type { Repository } from './repository.js';

export interface PartSpec {
  group: string;
  rank: number;
  of: number;
  /** The branch the combined commit goes to. */
  branch?: string;
  /** The run this part belongs to (--attempt, or the job id from the environment). */
  attempt?: string;
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

/** Where parts live: the local store or a remote. */
export interface PartsBackend {
  /** rank -> part commit id, for the group's part refs. */
  listParts(group: string): Promise<Map<number, ObjectId>>;
  readCommit(id: ObjectId): Promise<Commit>;
  readTree(id: ObjectId): Promise<Tree>;
  put(obj: MetaObject): Promise<ObjectId>;
  readRef(ref: string): Promise<ObjectId | null>;
  /** Throws RefConflictError when the ref does not hold `expected`. */
  casRef(ref: string, expected: ObjectId | null, next: ObjectId | null, reason: string): Promise<void>;
  /** Where a branch starts when it does not exist yet. */
  startOf(branch: string): Promise<ObjectId | null>;
  /** After the combine: whatever else keeps the parts alive (the local reflog). */
  forgetParts?(group: string): Promise<void>;
  author: string;
  clock: () => number;
}

export const PARTS_PREFIX = 'refs/parts/';
const GROUP_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,120}$/;
/** Commits older than the group's first part by more than this cannot be its combine (clock skew). */
const SKEW_MS = 10 * 60_000;

export const partRef = (group: string, rank: number) => `${PARTS_PREFIX}${group}/${rank}`;

/** The group and rank a part ref names, or undefined. */
export function parsePartRef(ref: string): { group: string; rank: number } | undefined {
  const m = /^refs\/parts\/([^/]+)\/(\d+)$/.exec(ref);
  return m ? { group: m[1], rank: Number(m[2]) } : undefined;
}

/** The run id a part records: `--attempt`, else the first job id the environment names, else none. */
export function attemptId(given: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const id = given ?? env.CKPT_ATTEMPT ?? env.SLURM_JOB_ID ?? env.TORCHELASTIC_RUN_ID;
  return id === undefined || id === '' ? undefined : id;
}

/** Parts of one group recorded by different runs (a restarted job): they make no commit. */
export class PartAttemptsError extends CkptError {
  constructor(group: string, byAttempt: Map<string, number[]>) {
    const list = [...byAttempt].map(([a, ranks]) => `rank(s) ${ranks.join(', ')} from ${a}`).join('; ');
    super('E_MISMATCH', `parts of group ${group} come from different runs (${list}); nothing committed. Use a group name unique to this checkpoint of this run`, {
      group,
      attempts: Object.fromEntries(byAttempt),
    });
  }
}

/** `R/N` as given to --part. */
export function parsePart(text: string, group: string | undefined, attempt?: string): PartSpec {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m) throw new UsageError(`--part expects RANK/COUNT such as 0/4, got ${JSON.stringify(text)}`);
  const rank = Number(m[1]);
  const of = Number(m[2]);
  if (of < 1 || of > 100_000 || rank >= of) throw new UsageError(`--part ${text}: the rank must be below the count (0..${Math.max(0, of - 1)})`);
  if (!group) throw new UsageError('--part needs --group ID (the same for every rank of this checkpoint)');
  if (!GROUP_RE.test(group)) throw new UsageError(`--group ${JSON.stringify(group)}: use letters, digits, '.', '_' and '-'`);
  return { group, rank, of, ...(attempt !== undefined ? { attempt } : {}) };
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

async function readParts(b: PartsBackend, group: string): Promise<PartInfo[]> {
  const out: PartInfo[] = [];
  for (const [rank, id] of await b.listParts(group)) {
    try {
      out.push({ rank, id, commit: await b.readCommit(id) });
    } catch (e) {
      // gone with a combine running beside us: the group is being (or was) committed
      if ((e as CkptError).code !== 'E_NOT_FOUND') throw e;
    }
  }
  return out.sort((a, b) => a.rank - b.rank);
}

/** The local store as a PartsBackend. */
export function localParts(repo: Repository): PartsBackend {
  return {
    listParts: async (group) => {
      const out = new Map<number, ObjectId>();
      for (const [ref, id] of await repo.store.refs.list(`${PARTS_PREFIX}${group}/`)) {
        const p = parsePartRef(ref);
        if (p) out.set(p.rank, id);
      }
      return out;
    },
    readCommit: (id) => repo.readCommit(id),
    readTree: (id) => repo.readTree(id),
    put: (obj) => repo.store.meta.put(obj),
    readRef: (ref) => repo.store.refs.read(ref),
    casRef: (ref, expected, next, reason) => repo.store.refs.cas(ref, expected, next, reason),
    startOf: async () => repo.headCommit(),
    // nor may the parts' reflog keep them: retention of the combined commit must free the data
    forgetParts: (group) => repo.store.deleteReflogs(`${PARTS_PREFIX}${group}`),
    author: repo.author,
    clock: repo.clock,
  };
}

/** Stores this rank's files as a part, and makes the commit when every part is there. */
export async function commitPart(repo: Repository, paths: string[], spec: PartSpec, opts: CommitOptions): Promise<PartResult> {
  const branch = opts.branch ?? (await repo.currentBranch())?.replace(/^refs\/heads\//, '');
  if (!branch) throw new UsageError('a many-rank commit needs a branch (HEAD is detached; pass --branch)');
  const meta: CommitMeta = { ...opts.meta, extra: { ...opts.meta?.extra, part: { group: spec.group, rank: spec.rank, of: spec.of, branch, ...(spec.attempt !== undefined ? { attempt: spec.attempt } : {}) } } };
  const ref = partRef(spec.group, spec.rank);
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
  const done = await combineParts(localParts(repo), spec.group, { message: opts.message, retries: opts.retries });
  return { group: spec.group, rank: spec.rank, of: spec.of, part: r.id, files: r.files, missing: done.missing, ...(done.commit ? { commit: done.commit } : {}), combined: done.combined };
}

/** The part commit ids a combined commit records, by rank. */
const partIds = (parts: PartInfo[]) => parts.map((p) => p.id);

/**
 * Looks back through the branch, down to `since`, for the commit of this group made of exactly
 * these parts (an earlier checkpoint that reused the group name is not it). A commit that records
 * no part ids (made before they were recorded) is it when its tree is the union tree.
 */
async function findGroupCommit(b: PartsBackend, head: ObjectId | null, group: string, parts: PartInfo[], tree: ObjectId, since: number): Promise<ObjectId | undefined> {
  const ids = JSON.stringify(partIds(parts));
  for (let id = head; id; ) {
    const c = await b.readCommit(id);
    const extra = c.meta.extra;
    if (extra?.group === group && (Array.isArray(extra.partIds) ? JSON.stringify(extra.partIds) === ids : c.tree === tree)) return id;
    if (c.time < since - SKEW_MS) return undefined;
    id = c.parents[0] ?? null;
  }
  return undefined;
}

/** One tree of every part's files; two ranks may not store different files at one path. */
async function unionTree(b: PartsBackend, group: string, parts: PartInfo[]): Promise<Tree> {
  const files: Record<string, TreeEntry> = {};
  for (const p of parts) {
    const t = await b.readTree(p.commit.tree);
    for (const [name, e] of Object.entries(t.files)) {
      if (files[name] && files[name].manifest !== e.manifest) throw new UsageError(`ranks of group ${group} store different files as ${name}`, { path: name });
      files[name] = e;
    }
  }
  return { type: 'tree', files: Object.fromEntries(Object.entries(files).sort(([a], [c]) => (a < c ? -1 : 1))) };
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
  meta.extra = { group, parts: of, partIds: partIds(parts) };
  const attempt = partOf(parts[0].commit)?.attempt;
  if (attempt !== undefined) meta.extra.attempt = attempt;
  return meta;
}

/** Makes the group's commit if every part is present and no one made it yet. */
export async function combineParts(
  b: PartsBackend,
  group: string,
  opts: { message?: string; retries?: number } = {},
): Promise<{ missing: number[]; commit?: ObjectId; combined: boolean }> {
  const parts = await readParts(b, group);
  const first = parts.length ? partOf(parts[0].commit) : undefined;
  const of = first?.of ?? 0;
  const present = new Set(parts.map((p) => p.rank));
  const missing = Array.from({ length: of }, (_, i) => i).filter((r) => !present.has(r));
  if (!first || missing.length > 0) return { missing, combined: false };
  const mismatch = parts.find((p) => partOf(p.commit)!.of !== of);
  if (mismatch) throw new UsageError(`ranks of group ${group} disagree on the count (${of} and ${partOf(mismatch.commit)!.of})`);
  const byAttempt = new Map<string, number[]>();
  for (const p of parts) {
    const a = partOf(p.commit)!.attempt;
    const key = a === undefined ? 'a run with no attempt id' : `attempt ${a}`;
    byAttempt.set(key, [...(byAttempt.get(key) ?? []), p.rank]);
  }
  if (byAttempt.size > 1) throw new PartAttemptsError(group, byAttempt);

  const tree = await b.put(await unionTree(b, group, parts));
  const since = Math.min(...parts.map((p) => p.commit.time));
  const branch = first.branch ?? 'main';
  const ref = `refs/heads/${branch}`;
  const message = opts.message ?? parts[0].commit.message;
  let commitId: ObjectId | undefined;
  let combined = false;
  for (let attempt = 0; !commitId; attempt++) {
    const expected = await b.readRef(ref);
    const head = expected ?? (await b.startOf(branch));
    commitId = await findGroupCommit(b, head, group, parts, tree, since);
    if (commitId) break;
    const id = await b.put({ type: 'commit', tree, parents: head ? [head] : [], message, author: b.author, time: b.clock(), meta: combinedMeta(parts, group, of) });
    try {
      await b.casRef(ref, expected, id, `commit: ${message.split('\n')[0]} (${of} parts)`);
      commitId = id;
      combined = true;
    } catch (e) {
      if (!(e instanceof RefConflictError) || attempt >= (opts.retries ?? 20)) throw e;
    }
  }
  // the parts are in the branch's history now; their refs only kept them alive until here
  for (const p of parts) await b.casRef(partRef(group, p.rank), p.id, null, `combined into ${commitId.slice(0, 12)}`).catch(() => undefined);
  await b.forgetParts?.(group);
  return { missing: [], commit: commitId, combined };
}

/** Groups with parts recorded but not yet combined, and the ranks they wait for. */
export async function pendingGroups(b: PartsBackend, groups: string[]): Promise<PendingGroup[]> {
  const out: PendingGroup[] = [];
  for (const group of [...new Set(groups)].sort()) {
    const parts = await readParts(b, group);
    if (parts.length === 0) continue;
    const of = partOf(parts[0].commit)!.of;
    const present = parts.map((p) => p.rank);
    out.push({ group, of, present, missing: Array.from({ length: of }, (_, i) => i).filter((r) => !present.includes(r)) });
  }
  return out;
}

/** The local store's groups waiting for ranks. */
export async function localPendingGroups(repo: Repository): Promise<PendingGroup[]> {
  const groups = [...(await repo.store.refs.list(PARTS_PREFIX)).keys()].map((r) => parsePartRef(r)?.group).filter((g): g is string => !!g);
  return pendingGroups(localParts(repo), groups);
}
