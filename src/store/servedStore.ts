/**
 * A store as `ckpt serve` sees it: `<root>/<name>/.ckpt` when that is a folder (a work tree's
 * store, which also has a view page), else `<root>/<name>` (a bare store, made by a push). The
 * server trusts no client, so no path component under its root may be a symlink: not the
 * repository folder, its `.ckpt`, the store's own folders, nor anything on the way to a key.
 * Bytes go through the backend (verification, atomic writes, compare-and-swap refs); this adds
 * what only the server needs: the checks above, its leases' shared lock, ranged streaming of a
 * key's file, and what the view page depends on.
 */
import { constants as fsConstants, promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ObjectId } from '../core/objectId.js';
import { LocalBackend, resolveStoreDir } from '../backend/localBackend.js';
import { acquireLock, type Lock } from '../backend/lockFile.js';
import { acquireShared, gcLockFile, liveSharers } from '../backend/storeLocks.js';
import { ChunkIndex } from './chunkIndex.js';
import { storeDirOf, workTreeOf } from './storeLocation.js';

/** Makes the error a refused request throws (the server's 400). */
export type Refuse = (message: string) => Error;

const printable = (s: string) => s.replace(/[^\x20-\x7e]/g, '?').slice(0, 300);

/** lstat of each existing component of `rel` under `base`: a symlink anywhere is refused. */
async function assertNoSymlinks(base: string, rel: string[], refuse: Refuse): Promise<void> {
  let p = base;
  for (const c of rel) {
    p = path.join(p, c);
    const st = await fs.lstat(p).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' || e.code === 'ENOTDIR' ? undefined : Promise.reject(e)));
    if (!st) return;
    if (st.isSymbolicLink()) throw refuse(`refusing to follow a symlink under the served root: ${printable(rel.join('/'))}`);
  }
}

/** realpath of the deepest part of `p` that exists, with the rest appended. */
async function realpathOfExisting(p: string): Promise<string> {
  try {
    return await fs.realpath(p);
  } catch (e) {
    const parent = path.dirname(p);
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || parent === p) throw e;
    return path.join(await realpathOfExisting(parent), path.basename(p));
  }
}

export class ServedStore {
  readonly backend: LocalBackend;

  private constructor(
    private readonly dir: string,
    private readonly refuse: Refuse,
  ) {
    this.backend = new LocalBackend(dir);
  }

  /** What tells two served stores apart (their folder). */
  get id(): string {
    return this.dir;
  }

  /**
   * The store of repository `name` (one path segment, checked by the caller) under `root` (a
   * real path), checked for a request on `key`.
   */
  static async open(root: string, name: string, key: string, refuse: Refuse): Promise<ServedStore> {
    const repoDir = path.join(root, name);
    await assertNoSymlinks(root, path.relative(root, storeDirOf(repoDir)).split(path.sep), refuse);
    const dir = await resolveStoreDir(repoDir);
    const real = await realpathOfExisting(dir);
    if (!real.startsWith(root + path.sep)) throw refuse('bad repository name');
    await assertNoSymlinks(dir, key.split('/').filter(Boolean), refuse);
    for (const d of ['tmp', 'locks', 'objects', 'refs']) await assertNoSymlinks(dir, [d], refuse);
    return new ServedStore(dir, refuse);
  }

  /** The work tree whose store this is (it has a view page); undefined for a bare store. */
  get workTree(): string | undefined {
    return workTreeOf(this.dir);
  }

  /** The store's lock folder (storeLocks.ts), made if missing and checked for symlinks. */
  private async locks(): Promise<string> {
    await fs.mkdir(path.join(this.dir, 'locks', 'shared'), { recursive: true });
    await assertNoSymlinks(this.dir, ['locks', 'shared'], this.refuse);
    return path.join(this.dir, 'locks');
  }

  /**
   * The store's shared lock (storeLocks.ts), the very file a local commit holds, taken for a
   * client's lease: refused at once (E_LOCKED) while gc holds the store.
   */
  async lockShared(purpose: string): Promise<Lock> {
    return acquireShared(await this.locks(), purpose, { timeoutMs: 0 });
  }

  /**
   * gc.lock, the first half of the store's exclusive lock, taken at once or refused (E_LOCKED);
   * the lock is the caller's once liveSharers() comes back empty.
   */
  async lockGc(purpose: string): Promise<Lock> {
    return acquireLock(gcLockFile(await this.locks()), 0, { purpose });
  }

  /** The live shared locks of the store (stale ones are broken on the way). */
  async liveSharers(): Promise<string[]> {
    return liveSharers(await this.locks());
  }

  /** The file of a key (checked by the caller) for streaming a range of it; a symlink put in place since the checks is still not followed. */
  openKey(key: string): Promise<fs.FileHandle> {
    return fs.open(path.join(this.dir, ...key.split('/')), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  }

  /** The chunk index of the store's index files. */
  chunkIndex(): Promise<ChunkIndex> {
    return ChunkIndex.load(new LocalBackend(this.dir));
  }

  /** Whether a pack is in the store, as a file. */
  hasPack(id: ObjectId): Promise<boolean> {
    return fs.stat(path.join(this.dir, 'objects', 'packs', `${id}.pack`)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  /** What a page drawn from the store depends on besides immutable objects: every ref, pruned mark and index file, with their times, and HEAD. */
  async state(): Promise<string> {
    const parts: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      const ents = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of ents) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else {
          const st = await fs.stat(p).catch(() => undefined);
          if (st) parts.push(`${path.relative(this.dir, p)}:${st.size}:${st.mtimeMs}`);
        }
      }
    };
    for (const d of ['refs', 'pruned', 'objects/index']) await walk(path.join(this.dir, d));
    parts.push(`HEAD:${await fs.readFile(path.join(this.dir, 'HEAD'), 'utf8').catch(() => '')}`);
    return parts.sort().join('\n');
  }
}
