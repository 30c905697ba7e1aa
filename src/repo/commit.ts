/**
 * `ckpt commit`: store checkpoint files (a folder commits as one tree), then write the tree and
 * the commit, then move the branch by compare-and-swap. A loser of a race re-parents its commit
 * onto the new head and tries again; its chunks and manifests are already stored.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError, RefConflictError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { CodeProvenance, Commit, CommitMeta, Manifest, Tree, TreeEntry } from '../core/objects.js';
import { Ingestor, readLayout, type IngestStats } from './ingestFile.js';
import type { Repository } from './repository.js';
import { deltaBaseFinder } from './deltaBase.js';

export interface CommitOptions {
  message: string;
  meta?: CommitMeta;
  branch?: string;
  format?: string;
  allowUnsafePickle?: boolean;
  compress?: boolean;
  code?: CodeProvenance;
  onProgress?: (done: number, total: number) => void;
  /** Retries of the ref update when another writer moved the branch. */
  retries?: number;
}

export interface CommitResult {
  id: ObjectId;
  branch: string | undefined;
  tree: ObjectId;
  files: { path: string; manifest: ObjectId; size: number; format: string }[];
  stats: IngestStats & { bytes: number };
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

async function targetRef(repo: Repository, branch?: string): Promise<{ ref: string | undefined; head: ObjectId | null }> {
  if (branch) {
    const ref = `refs/heads/${branch}`;
    const at = await repo.store.refs.read(ref);
    return { ref, head: at ?? (await repo.headCommit()) };
  }
  const ref = await repo.currentBranch();
  return { ref, head: await repo.headCommit() };
}

export async function commitFiles(repo: Repository, paths: string[], opts: CommitOptions): Promise<CommitResult> {
  if (!opts.message) throw new UsageError('a commit needs a message (-m)');
  const files = await collectFiles(paths);
  const treePaths = files.map((f) => repo.treePath(f));
  const dup = treePaths.find((p, i) => treePaths.indexOf(p) !== i);
  if (dup) throw new UsageError(`two files would be stored as ${dup}`);

  // Parse every file before writing anything: bad input leaves the store exactly as it was.
  const layouts = [];
  for (const f of files) layouts.push(await readLayout(f, { format: opts.format, allowUnsafePickle: opts.allowUnsafePickle }));
  const total = layouts.reduce((n, l) => n + l.size, 0);

  let { ref, head } = await targetRef(repo, opts.branch);
  const parentTree = head ? await repo.readTree((await repo.readCommit(head)).tree) : undefined;
  const ingestor = new Ingestor(repo.store, { compress: opts.compress ?? true });
  const manifests: Manifest[] = [];
  let before = 0;
  try {
    for (let i = 0; i < files.length; i++) {
      const finder = parentTree ? await deltaBaseFinder(repo, parentTree, treePaths[i], files.length) : undefined;
      ingestor.setDeltaBase(finder);
      const base = before;
      manifests.push(await ingestor.ingestWithProgress(files[i], layouts[i], (d) => opts.onProgress?.(base + d, total)));
      before += layouts[i].size;
    }
    await ingestor.flush();
  } catch (e) {
    await ingestor.abort();
    throw e;
  } finally {
    await ingestor.close();
  }

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
      ...(opts.code ? { code: opts.code } : {}),
    };
    const id = await repo.store.meta.put(commit);
    try {
      if (ref) await repo.store.refs.cas(ref, head, id, `commit: ${opts.message.split('\n')[0]}`);
      else await repo.store.refs.writeHead({ kind: 'detached', id });
      return { id, branch: ref, tree: treeId, files: out, stats: { ...ingestor.stats, bytes: total } };
    } catch (e) {
      if (!(e instanceof RefConflictError) || attempt >= (opts.retries ?? 5)) throw e;
      head = (e.data.actual as ObjectId | null) ?? null;
    }
  }
}
