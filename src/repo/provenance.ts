/**
 * Code provenance: which Git commit of the training code made a checkpoint, read through
 * isomorphic-git (no `git` binary needed). Dirty means what `git describe --dirty` means: a
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
import git from 'isomorphic-git';
import type { CodeProvenance, Manifest, Tree, TreeEntry } from '../core/objects.js';
import type { Ingestor } from './ingestFile.js';
import { readLayout } from './ingestFile.js';
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

export async function findGitRoot(dir: string): Promise<string | undefined> {
  try {
    return await git.findRoot({ fs, filepath: path.resolve(dir) });
  } catch {
    return undefined;
  }
}

/**
 * The state of the Git work tree holding `dir`, or undefined outside Git. `exclude` are absolute
 * paths (the checkpoints being committed) kept out of the untracked list.
 */
export async function readGitState(dir: string, exclude: string[] = []): Promise<GitState | undefined> {
  const root = await findGitRoot(dir);
  if (!root) return undefined;
  let commit: string | undefined;
  try {
    commit = await git.resolveRef({ fs, dir: root, ref: 'HEAD' });
  } catch {
    // a repository without commits yet: there is no code commit to name
  }
  const branch = (await git.currentBranch({ fs, dir: root, fullname: false }).catch(() => undefined)) ?? undefined;
  const remote = ((await git.getConfig({ fs, dir: root, path: 'remote.origin.url' }).catch(() => undefined)) as string | undefined) ?? undefined;
  const skip = new Set(exclude.map((f) => path.relative(root, path.resolve(f)).split(path.sep).join('/')));
  const changed: string[] = [];
  const deleted: string[] = [];
  const untracked: string[] = [];
  // refresh:false: ckpt reads the index and never rewrites it under the user's git
  const rows = await git.statusMatrix({ fs, dir: root, refresh: false, filter: (f) => !f.startsWith('.ckpt/') });
  for (const [file, head, workdir, stage] of rows) {
    if (head === 1 && workdir === 1 && stage === 1) continue;
    if (head === 0 && stage === 0) {
      if (workdir !== 0 && !skip.has(file)) untracked.push(file);
      continue;
    }
    changed.push(file);
    if (workdir === 0) deleted.push(file);
  }
  return {
    root,
    ...(commit ? { commit } : {}),
    ...(branch ? { branch } : {}),
    ...(remote ? { remote } : {}),
    dirty: changed.length > 0,
    changed,
    deleted,
    untracked,
  };
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
    ingestor.setDeltaBase(undefined);
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
