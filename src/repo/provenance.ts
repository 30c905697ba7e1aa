/**
 * Code provenance: which Git commit of the training code made a checkpoint. Where the `git`
 * program is installed the work tree's state comes from `git status --porcelain=v2` (Git's index
 * stat cache, fsmonitor and untracked cache make that as fast as `git status`); otherwise, or when
 * it fails, from isomorphic-git (no `git` binary needed), with the same meaning. Dirty means what `git describe --dirty` means: a
 * tracked file differs from HEAD, in the index or the work tree; untracked files are listed but
 * do not make the code dirty, and the checkpoint files being committed are left out of them.
 *
 * With `withCode`, the changed and untracked files' contents are stored as a tree of opaque
 * files through the same chunk store, so a run on uncommitted code can be reproduced with
 * `ckpt restore-code`. Checkpoint files and files bigger than MAX_CODE_FILE are listed but not
 * stored: a stray dataset or checkpoint in the work tree must not turn every commit into a copy.
 */
import fs from 'node:fs';
import * as path from 'node:path';
import type { CodeProvenance, Manifest, Tree, TreeEntry } from '../core/objects.js';
import type { Ingestor } from './ingestFile.js';
import { readLayout } from './ingestFile.js';
import { isInStore } from '../store/storeLocation.js';
import { runGit } from './runGit.js';
import type { Repository } from './repository.js';

export const MAX_CODE_FILE = 16 * 1024 * 1024;

/** Checkpoints lying untracked in the work tree are training output, not code. */
const CHECKPOINT_FILE = /\.(safetensors|pt|pth|bin|ckpt|npy|npz|gguf|h5|onnx|pkl)$/i;

export interface GitState {
  /** Top of the Git work tree. */
  root: string;
  commit?: string;
  branch?: string;
  remote?: string;
  dirty: boolean;
  /** Tracked files that differ from HEAD (deleted ones included). */
  changed: string[];
  deleted: string[];
  untracked: string[];
}

/** The top of the Git work tree holding `dir`: the nearest folder with a `.git` entry. */
export async function findGitRoot(dir: string): Promise<string | undefined> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    if (await fs.promises.lstat(path.join(d, '.git')).then(() => true, () => false)) return d;
    if (path.dirname(d) === d) return undefined;
  }
}

/**
 * The state of the Git work tree holding `dir`, or undefined outside Git. `exclude` are absolute
 * paths (the checkpoints being committed) kept out of the untracked list.
 */
export async function readGitState(dir: string, exclude: string[] = []): Promise<GitState | undefined> {
  const root = await findGitRoot(dir);
  if (!root) return undefined;
  return (await gitStateFromProgram(root, exclude)) ?? (await gitStateFromIsomorphicGit(root, exclude));
}

const skipSet = (root: string, exclude: string[]) => new Set(exclude.map((f) => path.relative(root, path.resolve(f)).split(path.sep).join('/')));

/**
 * From `git status --porcelain=v2 -z --branch --untracked-files=all`; undefined when there is no
 * `git` program or it fails (an unsafe directory, a corrupt index), so the caller falls back.
 */
export async function gitStateFromProgram(root: string, exclude: string[] = []): Promise<GitState | undefined> {
  const [out, url] = await Promise.all([
    runGit(root, ['--no-optional-locks', 'status', '--porcelain=v2', '-z', '--branch', '--untracked-files=all', '--no-renames']),
    runGit(root, ['config', '--get', 'remote.origin.url']),
  ]);
  if (!out) return undefined;
  const skip = skipSet(root, exclude);
  let commit: string | undefined;
  let branch: string | undefined;
  const changed: string[] = [];
  const deleted: string[] = [];
  const untracked: string[] = [];
  const fields = out.toString('utf8').split('\0');
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i];
    if (f.startsWith('# branch.oid ')) {
      const oid = f.slice(13);
      if (/^[0-9a-f]{40,64}$/.test(oid)) commit = oid;
    } else if (f.startsWith('# branch.head ')) {
      const head = f.slice(14);
      if (head !== '(detached)') branch = head;
    } else if (f.startsWith('1 ') || f.startsWith('u ')) {
      // 1 XY sub mH mI mW hH hI path; u XY sub m1 m2 m3 mW h1 h2 h3 path
      const parts = f.split(' ');
      const file = parts.slice(f.startsWith('1 ') ? 8 : 10).join(' ');
      if (isInStore(file)) continue;
      changed.push(file);
      const xy = parts[1];
      if (xy[1] === 'D' || (xy[0] === 'D' && !(await exists(path.join(root, file))))) deleted.push(file);
    } else if (f.startsWith('2 ')) {
      // renames are off, but a config could still produce one: path then its origin
      const file = f.split(' ').slice(9).join(' ');
      const orig = fields[++i];
      if (!isInStore(file)) changed.push(file);
      if (orig !== undefined && !isInStore(orig)) {
        changed.push(orig);
        deleted.push(orig);
      }
    } else if (f.startsWith('? ')) {
      const file = f.slice(2);
      if (!isInStore(file) && !skip.has(file)) untracked.push(file);
    }
  }
  // a file removed from the index but left on disk is both a change and untracked to git;
  // it is a change of the code, as isomorphic-git reports it
  const tracked = new Set(changed);
  const remote = url?.toString('utf8').trim() || undefined;
  const byPath = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  const lists = { changed: changed.sort(byPath), deleted: deleted.sort(byPath), untracked: untracked.filter((f) => !tracked.has(f)).sort(byPath) };
  return gitState(root, { commit, branch, remote }, lists);
}

function gitState(
  root: string,
  named: { commit?: string; branch?: string; remote?: string },
  lists: { changed: string[]; deleted: string[]; untracked: string[] },
): GitState {
  const { commit, branch, remote } = named;
  return {
    root,
    ...(commit ? { commit } : {}),
    ...(branch ? { branch } : {}),
    ...(remote ? { remote } : {}),
    dirty: lists.changed.length > 0,
    ...lists,
  };
}

const exists = (p: string) => fs.promises.lstat(p).then(() => true, () => false);

/** The same state through isomorphic-git, for machines without the `git` program. */
export async function gitStateFromIsomorphicGit(root: string, exclude: string[] = []): Promise<GitState> {
  const git = (await import('isomorphic-git')).default;
  let commit: string | undefined;
  try {
    commit = await git.resolveRef({ fs, dir: root, ref: 'HEAD' });
  } catch {
    // a repository without commits yet: there is no code commit to name
  }
  const branch = (await git.currentBranch({ fs, dir: root, fullname: false }).catch(() => undefined)) ?? undefined;
  const remote = ((await git.getConfig({ fs, dir: root, path: 'remote.origin.url' }).catch(() => undefined)) as string | undefined) ?? undefined;
  const skip = skipSet(root, exclude);
  const changed: string[] = [];
  const deleted: string[] = [];
  const untracked: string[] = [];
  // refresh:false: ckpt reads the index and never rewrites it under the user's git
  const rows = await git.statusMatrix({ fs, dir: root, refresh: false, filter: (f) => !isInStore(f) });
  for (const [file, head, workdir, stage] of rows) {
    if (head === 1 && workdir === 1 && stage === 1) continue;
    if (head === 0 && stage === 0) {
      if (workdir !== 0 && !skip.has(file)) untracked.push(file);
      continue;
    }
    changed.push(file);
    if (workdir === 0) deleted.push(file);
  }
  return gitState(root, { commit, branch, remote }, { changed, deleted, untracked });
}

export interface CapturedCode {
  code: CodeProvenance;
  /** Files listed but not stored, and why. */
  skipped: string[];
  /** Stored files' manifests, written by writeCodeTree once their packs are durable. */
  manifests: Map<string, Manifest>;
}

/**
 * Builds the commit's provenance from a Git state and, with an ingestor, chunks the changed and
 * untracked files into it (the caller holds the store's shared lock and flushes the ingestor).
 */
export async function captureCode(state: GitState, ingestor: Ingestor | undefined): Promise<CapturedCode> {
  const code: CodeProvenance = {
    ...(state.commit ? { commit: state.commit } : {}),
    ...(state.branch ? { branch: state.branch } : {}),
    ...(state.remote ? { remote: state.remote } : {}),
    dirty: state.dirty,
    changed: state.changed,
    untracked: state.untracked,
  };
  const skipped: string[] = [];
  const manifests = new Map<string, Manifest>();
  if (!ingestor) return { code, skipped, manifests };
  const gone = new Set(state.deleted);
  for (const rel of [...state.changed, ...state.untracked]) {
    if (gone.has(rel) || CHECKPOINT_FILE.test(rel)) continue;
    const abs = path.join(state.root, ...rel.split('/'));
    const st = await fs.promises.lstat(abs).catch(() => undefined);
    if (!st?.isFile()) {
      if (st) skipped.push(`${rel} (not a regular file)`);
      continue;
    }
    if (st.size > MAX_CODE_FILE) {
      skipped.push(`${rel} (${st.size} bytes, over ${MAX_CODE_FILE})`);
      continue;
    }
    manifests.set(rel, await ingestor.ingest(abs, await readLayout(abs, { format: 'opaque' })));
  }
  return { code, skipped, manifests };
}

/** Writes the stored files' manifests and tree (after their packs: invariant 1 of docs/architecture.md). */
export async function writeCodeTree(repo: Repository, captured: CapturedCode): Promise<CodeProvenance> {
  if (captured.manifests.size === 0) return captured.code;
  const files: Record<string, TreeEntry> = {};
  for (const [rel, m] of captured.manifests) {
    files[rel] = { manifest: await repo.store.meta.put(m), size: m.size, hash: m.hash, format: m.format };
  }
  const tree: Tree = { type: 'tree', files };
  return { ...captured.code, files: await repo.store.meta.put(tree) };
}
