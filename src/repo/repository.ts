/**
 * A ckpt repository: the work tree (usually the top of the training code's Git work tree) and
 * its `.ckpt/` store. Operations live in their own files and take a Repository.
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit, Manifest, Tree } from '../core/objects.js';
import { validateTree } from '../core/treePath.js';
import { Store, type StoreOptions } from '../store/store.js';
import { defaultConfig, validateChunkSize } from '../store/storeConfig.js';
import { findUp, findWorkTree, STORE_GITIGNORE_LINES, storeDirOf } from '../store/storeLocation.js';

export interface RepositoryOptions extends StoreOptions {
  author?: string;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

export class Repository {
  readonly author: string;

  private constructor(
    /** The work tree's top directory (holds `.ckpt/`). */
    readonly root: string,
    readonly store: Store,
    options: RepositoryOptions,
  ) {
    this.author = options.author ?? process.env.CKPT_AUTHOR ?? `${os.userInfo().username}@${os.hostname()}`;
  }

  get clock(): () => number {
    return this.store.clock;
  }

  /**
   * Creates `.ckpt/` at the top of the Git work tree containing `cwd`, or in `cwd` itself, and
   * adds the ignore lines to that directory's `.gitignore`.
   */
  static async init(cwd: string, opts: RepositoryOptions & { chunkSize?: number } = {}): Promise<Repository> {
    const root = (await findUp(cwd, '.git')) ?? path.resolve(cwd);
    const chunkSize = validateChunkSize(opts.chunkSize ?? defaultConfig().chunkSize);
    const store = await Store.create(storeDirOf(root), defaultConfig(chunkSize), opts);
    const gi = path.join(root, '.gitignore');
    const current = (await exists(gi)) ? await fs.readFile(gi, 'utf8') : '';
    const missing = STORE_GITIGNORE_LINES.filter((l) => !current.split('\n').includes(l));
    // the comment alone is not worth a write; any missing rule is
    if (missing.some((l) => !l.startsWith('#'))) {
      await fs.writeFile(gi, `${current}${current && !current.endsWith('\n') ? '\n' : ''}${missing.join('\n')}\n`);
    }
    return new Repository(root, store, opts);
  }

  static async open(cwd: string, opts: RepositoryOptions = {}): Promise<Repository> {
    const root = await findWorkTree(cwd);
    if (!root) throw new CkptError('E_NOT_A_REPO', `not in a ckpt repository (no .ckpt/ at or above ${cwd}); run \`ckpt init\``);
    return new Repository(root, await Store.open(storeDirOf(root), opts), opts);
  }

  /**
   * A repository whose store is not the work tree's own (`ckpt --store URL`): a folder, `ckpt
   * serve` or an S3 prefix, opened by the caller. The work tree (Git provenance, tree paths) is
   * the one around `cwd`: the top of a ckpt work tree, else of a Git work tree, else `cwd`.
   */
  static async withStore(cwd: string, store: Store, opts: RepositoryOptions = {}): Promise<Repository> {
    const root = (await findWorkTree(cwd)) ?? (await findUp(cwd, '.git')) ?? path.resolve(cwd);
    return new Repository(root, store, opts);
  }

  readCommit(id: ObjectId): Promise<Commit> {
    return this.store.meta.get<Commit>(id, 'commit');
  }
  /** A tree, its paths checked (treePath.ts): a tree may have come from a stranger. */
  async readTree(id: ObjectId): Promise<Tree> {
    return validateTree<Tree>(await this.store.meta.get<Tree>(id, 'tree'), id);
  }
  readManifest(id: ObjectId): Promise<Manifest> {
    return this.store.meta.get<Manifest>(id, 'manifest');
  }

  /** The branch ref HEAD points to, or undefined when detached. */
  async currentBranch(): Promise<string | undefined> {
    const h = await this.store.refs.readHead();
    return h.kind === 'branch' ? h.ref : undefined;
  }

  async headCommit(): Promise<ObjectId | null> {
    const h = await this.store.refs.readHead();
    return h.kind === 'branch' ? this.store.refs.read(h.ref) : h.id;
  }

  /** A path as stored in trees: relative to the work tree, forward slashes. */
  treePath(file: string): string {
    const rel = path.relative(this.root, path.resolve(file));
    if (rel.startsWith('..') || path.isAbsolute(rel)) return path.basename(file);
    return rel.split(path.sep).join('/');
  }
}
