/**
 * `ckpt commit`: store checkpoint files (a folder commits as one tree), then write the tree and
 * the commit, then move the branch by compare-and-swap. A loser of a race re-parents its commit
 * onto the new head and tries again; its chunks and manifests are already stored.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError, RefConflictError, UsageError } from '../core/errors.js';
import type { Layout } from '../core/layout.js';
import type { ObjectId } from '../core/objectId.js';
import type { CodeProvenance, Commit, CommitMeta, Manifest, Tree, TreeEntry } from '../core/objects.js';
import { treePathFault } from '../core/treePath.js';
import { createLimiter } from '../core/limiter.js';
import { Ingestor, readLayout, type IngestStats } from './ingestFile.js';
import type { Repository } from './repository.js';
import { deltaBaseFinder } from './deltaBase.js';
import { StatCache } from './statCache.js';
import { appendNote, noteLine } from './gitNotes.js';
import { captureCode, readGitState, writeCodeTree, type CapturedCode, type GitState } from './provenance.js';

export interface CommitOptions {
  message: string;
  meta?: CommitMeta;
  branch?: string;
  format?: string;
  allowUnsafePickle?: boolean;
  compress?: boolean;
  /** Provenance given by the caller; otherwise read from Git when `provenance` is set. */
  code?: CodeProvenance;
  /** Record the Git state of the code (and with withCode, the changed files' contents). */
  provenance?: { withCode?: boolean };
  onProgress?: (done: number, total: number) => void;
  /** Retries of the ref update when another writer moved the branch. */
  retries?: number;
  /** Store paths relative to this folder instead of the work tree (a checkpoint folder as one tree). */
  treeRoot?: string;
  /** Write the commit (no parents) but move no ref: a part of a many-rank commit. */
  detached?: boolean;
  /** Runs while the store's shared lock is still held (gc cannot sweep what it refers to yet). */
  whileLocked?: (r: CommitResult) => Promise<void>;
}

export interface CommitResult {
  id: ObjectId;
  branch: string | undefined;
  tree: ObjectId;
  files: { path: string; manifest: ObjectId; size: number; format: string }[];
  stats: IngestStats & { bytes: number };
  /** The code provenance recorded, if any. */
  code?: CodeProvenance;
  /** Not in a Git work tree, so no provenance was recorded (only when asked for). */
  noGit?: boolean;
  /** Notes for the user: code files not stored, a Git note that could not be written. */
  warnings: string[];
}

/** Files to commit: each path, or every regular file below a folder (hidden files skipped). */
export async function collectFiles(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string): Promise<void> => {
    let st;
    try {
      st = await fs.stat(p);
    } catch {
      throw new CkptError('E_NOT_FOUND', `${p}: no such file or directory`, { path: p });
    }
    if (st.isDirectory()) {
      for (const e of (await fs.readdir(p)).sort()) if (!e.startsWith('.')) await walk(path.join(p, e));
    } else if (st.isFile()) out.push(p);
  };
  for (const p of paths) await walk(p);
  if (out.length === 0) throw new UsageError('nothing to commit: no files in the given paths');
  return out;
}

/** `file` relative to `root`, forward slashes; a file outside `root` keeps its base name. */
function rootedPath(root: string, file: string): string {
  const rel = path.relative(path.resolve(root), path.resolve(file));
  if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return path.basename(file);
  return rel.split(path.sep).join('/');
}

/**
 * The ref to move, the value it must still hold for the compare-and-swap, and the parent. They
 * differ for a new branch: it starts at HEAD, but the swap expects the ref to be absent.
 */
async function targetRef(
  repo: Repository,
  branch?: string,
): Promise<{ ref: string | undefined; expected: ObjectId | null; head: ObjectId | null }> {
  if (branch) {
    const ref = `refs/heads/${branch}`;
    const at = await repo.store.refs.read(ref);
    return { ref, expected: at, head: at ?? (await repo.headCommit()) };
  }
  const ref = await repo.currentBranch();
  const head = await repo.headCommit();
  return { ref, expected: head, head };
}

/** Files of one commit ingested at once (see commitLocked). */
const FILE_JOBS = 2;

export async function commitFiles(repo: Repository, paths: string[], opts: CommitOptions): Promise<CommitResult> {
  if (!opts.message) throw new UsageError('a commit needs a message (-m)');
  const files = await collectFiles(paths);
  const treePaths = files.map((f) => (opts.treeRoot === undefined ? repo.treePath(f) : rootedPath(opts.treeRoot, f)));
  const dup = treePaths.find((p, i) => treePaths.indexOf(p) !== i);
  if (dup) throw new UsageError(`two files would be stored as ${dup}`);
  // a tree never names what a checkout elsewhere must not write (.git, .ckpt, `..`)
  treePaths.forEach((p, i) => {
    const fault = treePathFault(p);
    if (fault) throw new UsageError(`${files[i]} cannot be stored as ${JSON.stringify(p)}: ${fault}`, { file: files[i], path: p });
  });

  // The Git work tree's state is read by `git status` in its own process while this one parses
  // and stores the checkpoint (inside a big Git work tree it takes as long as the commit itself);
  // it is awaited where the commit records it.
  const gitStateRead = opts.provenance && !opts.code ? readGitState(repo.root, files) : Promise.resolve(undefined);
  gitStateRead.catch(() => {}); // awaited below; this only keeps an early failure from counting as unhandled

  // Parse every file before writing anything: bad input leaves the store exactly as it was. A
  // file unchanged since it was last committed (stat cache) is not read at all.
  const cache = await StatCache.load(repo.store);
  const cached: (Manifest | undefined)[] = [];
  const layouts: (Layout | undefined)[] = [];
  let total = 0;
  for (const f of files) {
    const id = opts.format === undefined ? await cache.candidate(f) : undefined;
    let hit = id ? await repo.readManifest(id).catch(() => undefined) : undefined;
    // an unsafe pickle stays refused unless allowed again, even when unchanged
    if (hit?.warnings?.length && !opts.allowUnsafePickle) hit = undefined;
    cached.push(hit);
    const layout = hit ? undefined : await readLayout(f, { format: opts.format, allowUnsafePickle: opts.allowUnsafePickle });
    layouts.push(layout);
    total += (hit ?? layout)!.size;
  }

  const warnings: string[] = [];

  // The shared lock keeps gc from sweeping while this commit deduplicates against the index; the
  // index is reloaded under it, so nothing a finished gc removed can be taken for stored.
  const lock = await repo.store.lockShared('commit');
  let result: CommitResult;
  try {
    await repo.store.reloadIndex();
    result = await commitLocked(repo, files, treePaths, cached, layouts, total, opts, gitStateRead, warnings);
    if (opts.whileLocked) await opts.whileLocked(result);
  } finally {
    await lock.release();
  }
  // links in the store's tmp/ (a watcher's snapshot of a checkpoint) go away: not worth an entry
  for (let i = 0; i < files.length; i++) if (!repo.store.isScratch(files[i])) await cache.record(files[i], result.files[i].manifest, repo.clock());
  await cache.save();
  const gitState = await gitStateRead;
  if (gitState && result.code?.commit) {
    try {
      await appendNote(gitState.root, result.code.commit, noteLine(result.id, result.branch, opts.message), (write) => repo.store.withLock('git-notes', write, 60_000));
    } catch (e) {
      warnings.push(`could not write the Git note on ${result.code.commit.slice(0, 12)}: ${(e as Error).message}`);
    }
  }
  return result;
}

async function commitLocked(
  repo: Repository,
  files: string[],
  treePaths: string[],
  cached: (Manifest | undefined)[],
  layouts: (Layout | undefined)[],
  total: number,
  opts: CommitOptions,
  gitStateRead: Promise<GitState | undefined>,
  warnings: string[],
): Promise<CommitResult> {
  let gitState: GitState | undefined;
  let { ref, expected, head } = opts.detached ? { ref: undefined, expected: null, head: null } : await targetRef(repo, opts.branch);
  const parentTree = head ? await repo.readTree((await repo.readCommit(head)).tree) : undefined;
  const ingestor = new Ingestor(repo.store, { compress: opts.compress ?? true });
  const manifests: Manifest[] = [];
  let captured: CapturedCode | undefined;
  try {
    const index = await repo.store.index();
    // Files go in FILE_JOBS at a time (a folder of shards): one file's reads, hashing and
    // compression leave the cores idle in turns that another file's fill.
    const done = new Array<number>(files.length).fill(0);
    const progress = () => opts.onProgress?.(done.reduce((a, b) => a + b, 0), total);
    const ingestOne = async (i: number): Promise<Manifest> => {
      const reused = cached[i];
      // the cached manifest stands only while gc has left every chunk it names
      if (reused && StatCache.allChunksIndexed(index, reused)) return reused;
      const finder = parentTree ? await deltaBaseFinder(repo, parentTree, treePaths[i], files.length) : undefined;
      const layout = layouts[i] ?? (await readLayout(files[i], { format: opts.format, allowUnsafePickle: opts.allowUnsafePickle }));
      const m = await ingestor.ingest(
        files[i],
        layout,
        (d) => {
          done[i] = d;
          progress();
        },
        finder,
      );
      done[i] = m.size;
      return m;
    };
    const limit = createLimiter(FILE_JOBS);
    // every file settles before a failure is reported: the pack is aborted with nothing writing to it
    const settled = await Promise.allSettled(files.map((_, i) => limit(() => ingestOne(i))));
    for (const r of settled) if (r.status === 'rejected') throw r.reason;
    for (const r of settled) if (r.status === 'fulfilled') manifests.push(r.value);
    gitState = await gitStateRead;
    if (gitState) {
      captured = await captureCode(gitState, opts.provenance?.withCode ? ingestor : undefined);
      for (const s of captured.skipped) warnings.push(`code file not stored: ${s}`);
    }
    await ingestor.flush();
  } catch (e) {
    await ingestor.abort();
    throw e;
  } finally {
    await ingestor.close();
  }
  const code = captured ? await writeCodeTree(repo, captured) : opts.code;

  const entries: Record<string, TreeEntry> = {};
  const out: CommitResult['files'] = [];
  for (let i = 0; i < files.length; i++) {
    const m = manifests[i];
    const id = await repo.store.meta.put(m);
    entries[treePaths[i]] = { manifest: id, size: m.size, hash: m.hash, format: m.format };
    out.push({ path: treePaths[i], manifest: id, size: m.size, format: m.format });
  }
  const tree: Tree = { type: 'tree', files: entries };
  const treeId = await repo.store.meta.put(tree);

  for (let attempt = 0; ; attempt++) {
    const commit: Commit = {
      type: 'commit',
      tree: treeId,
      parents: head ? [head] : [],
      message: opts.message,
      author: repo.author,
      time: repo.clock(),
      meta: opts.meta ?? {},
      ...(code ? { code } : {}),
    };
    const id = await repo.store.meta.put(commit);
    try {
      if (ref) await repo.store.refs.cas(ref, expected, id, `commit: ${opts.message.split('\n')[0]}`);
      else if (!opts.detached) await repo.store.refs.writeHead({ kind: 'detached', id });
      return {
        id,
        branch: ref,
        tree: treeId,
        files: out,
        stats: { ...ingestor.stats, bytes: total },
        ...(code ? { code } : {}),
        ...(opts.provenance && !opts.code && !gitState ? { noGit: true } : {}),
        warnings,
      };
    } catch (e) {
      if (!(e instanceof RefConflictError) || attempt >= (opts.retries ?? 5)) throw e;
      expected = (e.data.actual as ObjectId | null) ?? null;
      head = expected;
    }
  }
}
