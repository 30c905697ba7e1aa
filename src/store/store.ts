/**
 * The object store: packs and their index, metadata objects, refs and their reflogs, retention
 * marks, config and HEAD, over a backend (src/backend/): the `.ckpt/` folder of a work tree, a
 * folder elsewhere, `ckpt serve` or an S3 prefix. Written once against the Backend interface;
 * this is the one place (with the backend drivers) that knows the store's layout. A local folder
 * adds only its layout check, its scratch folder tmp/ beside the packs, and per-machine files.
 */
import { lstatSync, promises as fs, readdirSync, statSync, type Dirent, type Stats } from 'node:fs';
import * as path from 'node:path';
import { CkptError, NotFoundError } from '../core/errors.js';
import { ioError } from '../core/ioError.js';
import type { ObjectId } from '../core/objectId.js';
import { kindOfEntry, readFileOrUndefined, tmpName, writeFileAtomic } from '../backend/atomicFile.js';
import { whereIs, type Backend, type PutBody } from '../backend/backend.js';
import { withLock, type Lock } from '../backend/lockFile.js';
import { LocalBackend } from '../backend/localBackend.js';
import { indexKey, isSafeRefName, logKey, metaKey, packKey, parseKey } from '../backend/objectKeys.js';
import { acquireExclusive, acquireShared, type StoreLockOptions } from '../backend/storeLocks.js';
import { ChunkIndex, decodeIndexFile } from './chunkIndex.js';
import { readIndexCache, updateIndexCache, type CachedIndexFile, type IndexCache } from './indexCache.js';
import { ChunkReader } from './chunkReader.js';
import { CommitCache } from './commitCache.js';
import { emptyUsage, UsageCache, type SizedKind, type UsageEntries } from './usageCache.js';
import { UsageRecorder } from './usageRecorder.js';
import { MetaStore } from './metaStore.js';
import { PackWriter, type FinishedPack } from './packWriter.js';
import { PrunedMarks } from './prunedMarks.js';
import { RefStore } from './refStore.js';
import { defaultConfig, parseConfig, type StoreConfig } from './storeConfig.js';
import { storeDiskUsage, type StoreDiskUsage } from './storeDiskUsage.js';

/** A config is a few hundred bytes; a huge one is damage, not something to parse. */
const MAX_CONFIG_BYTES = 1024 * 1024;

/** Where the store expects folders and files; each present one must be of that type. */
const LAYOUT: Array<[string, 'folder' | 'file']> = [
  ['HEAD', 'file'],
  ['objects', 'folder'],
  ['objects/packs', 'folder'],
  ['objects/index', 'folder'],
  ['objects/meta', 'folder'],
  ['refs', 'folder'],
  ['refs/heads', 'folder'],
  ['refs/tags', 'folder'],
  ['logs', 'folder'],
  ['locks', 'folder'],
  ['locks/shared', 'folder'],
  ['tmp', 'folder'],
];

/**
 * A folder that is a file or a file that is a folder (or a pipe, or a device) is damage every
 * command would trip over differently; found on open, it is one E_CORRUPT naming the path. Blocking
 * calls: this runs at every command's start (a fixed number of lstat calls, whatever the history).
 */
async function checkLayout(dir: string): Promise<void> {
  for (const [rel, want] of LAYOUT) {
    const p = path.join(dir, ...rel.split('/'));
    let st: Stats;
    try {
      st = lstatSync(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') continue; // its parent is reported
      throw ioError(e, p);
    }
    if (st.isSymbolicLink()) {
      try {
        st = statSync(p);
      } catch {
        // a dangling link: reported as what it is
      }
    }
    const ok = want === 'folder' ? st.isDirectory() : st.isFile();
    if (!ok) throw new CkptError('E_CORRUPT', `${p} is ${st.isFile() ? 'a file' : kindOfEntry(st)}, not a ${want}; the store is damaged (see \`ckpt fsck\`)`, { file: p });
  }
}

/**
 * A pack or index file that is a folder or a pipe: listings skip it, so it is named here, by
 * whatever lists packs or index files of a local store (loading the index, gc, fsck), before it
 * could be taken for missing. Commands that never list them (log, status, show) do not pay for
 * a listing that grows with the history.
 */
function checkEntries(dir: string, folder: 'objects/index' | 'objects/packs', listed?: Dirent[]): void {
  const name = folder === 'objects/index' ? INDEX_NAME : PACK_NAME;
  const d = path.join(dir, ...folder.split('/'));
  let ents: Dirent[];
  try {
    ents = listed ?? readdirSync(d, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of ents) {
    if (e.isFile() || !name.test(e.name)) continue;
    const p = path.join(d, e.name);
    const st = lstatSync(p);
    if (!st.isFile()) throw new CkptError('E_CORRUPT', `${p} is ${kindOfEntry(st)}, not a file; the store is damaged (see \`ckpt fsck\`)`, { file: p });
  }
}

export interface StoreOptions {
  clock?: () => number;
}

/** A file of the packs folder named like a pack. */
export interface PackFileInfo {
  id: ObjectId;
  size: number;
  mtimeMs: number;
  /** Set when it is not a regular file: what it is, in words (kindOfEntry). */
  notAFile?: string;
}

/** A pack open for positioned reads. */
export interface PackHandle {
  /** Up to `length` bytes from `offset`: fewer only where the file ends. */
  read(offset: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

const PACK_NAME = /^([0-9a-f]{64})\.pack$/;
const INDEX_NAME = /^([0-9a-f]{64})\.idx$/;

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

export class Store {
  readonly meta: MetaStore;
  readonly refs: RefStore;
  /** Retention marks: which commits had their data dropped. */
  readonly pruned: PrunedMarks;
  private chunkIndex: ChunkIndex | undefined;
  /** The shared lock this Store holds, and how many of its callers hold it (lockShared). */
  private shared: { lock: Promise<Lock>; holders: number } | undefined;

  private constructor(
    /** The `.ckpt` directory of a local store; for a store elsewhere, its local scratch folder. */
    readonly dir: string,
    readonly backend: Backend,
    public config: StoreConfig,
    readonly clock: () => number,
  ) {
    this.meta = new MetaStore(backend);
    this.refs = new RefStore(backend, clock);
    this.pruned = new PrunedMarks(backend);
    if (this.isLocal) {
      this.meta.commitCache = new CommitCache(path.join(dir, 'commit-cache'), this.tmpDir);
      this.meta.usage = new UsageRecorder(new UsageCache(path.join(dir, 'usage-cache'), this.tmpDir));
    }
  }

  /** True when the store is a folder on this machine (its backend is the local folder's). */
  get isLocal(): boolean {
    // a folder opened over its backend from elsewhere (a push to it) keeps its scratch apart
    return this.backend instanceof LocalBackend && this.backend.storeDir === this.dir;
  }

  // The folders below are the store's own; code outside src/store/ asks the methods further
  // down instead (test/docs/storePaths.test.ts).

  get tmpDir(): string {
    return path.join(this.dir, 'tmp');
  }
  get objectsDir(): string {
    return path.join(this.dir, 'objects');
  }
  get packsDir(): string {
    return path.join(this.dir, 'objects', 'packs');
  }
  get indexDir(): string {
    return path.join(this.dir, 'objects', 'index');
  }
  get locksDir(): string {
    return path.join(this.dir, 'locks');
  }

  /** Creates an empty store in `dir` (the `.ckpt` directory itself). */
  static async create(dir: string, config: StoreConfig = defaultConfig(), options: StoreOptions = {}): Promise<Store> {
    try {
      await fs.access(path.join(dir, 'config'));
      throw new CkptError('E_EXISTS', `a ckpt store already exists in ${dir}`, { dir });
    } catch (e) {
      if ((e as CkptError).code === 'E_EXISTS') throw e;
    }
    for (const d of ['objects/packs', 'objects/index', 'objects/meta', 'refs/heads', 'refs/tags', 'logs', 'locks', 'tmp']) {
      await fs.mkdir(path.join(dir, d), { recursive: true });
    }
    const store = new Store(dir, new LocalBackend(dir), config, options.clock ?? Date.now);
    await store.refs.writeHead({ kind: 'branch', ref: 'refs/heads/main' });
    await store.saveConfig();
    return store;
  }

  static async open(dir: string, options: StoreOptions = {}): Promise<Store> {
    const backend = new LocalBackend(dir);
    const config = await readConfig(backend, () => new CkptError('E_NOT_A_REPO', `no ckpt store at ${dir} (run \`ckpt init\`)`, { dir }));
    await checkLayout(dir);
    return Store.over(dir, backend, config, options);
  }

  /**
   * The store a backend holds (`ckpt --store URL`), with `scratchDir` a local folder for packs
   * being written and other temporary files.
   */
  static async openBackend(backend: Backend, scratchDir: string, options: StoreOptions = {}): Promise<Store> {
    const config = await readConfig(backend, () => new CkptError('E_NOT_A_REPO', `no ckpt store at ${backend.url} (its config is missing; \`ckpt --store ${backend.url} init\` creates one)`, { url: backend.url }));
    return Store.over(scratchDir, backend, config, options);
  }

  /**
   * Creates a store on a backend that holds none (`ckpt --store URL init`): its config and HEAD.
   * `scratchDir` is a local folder for temporary files. Refs or index files without a config are
   * a damaged store, not an empty place to start one, and are refused, unless `adopt` says they
   * are objects an older ckpt pushed there without a config (a push, openRemote).
   */
  static async createOn(backend: Backend, scratchDir: string, config: StoreConfig = defaultConfig(), options: StoreOptions & { adopt?: boolean } = {}): Promise<Store> {
    if (await backend.readFile('config')) throw new CkptError('E_EXISTS', `a ckpt store already exists at ${backend.url}`, { url: backend.url });
    for (const prefix of options.adopt ? [] : ['refs/', 'objects/index/']) {
      if ((await backend.list(prefix)).length > 0) {
        throw new CkptError('E_EXISTS', `${backend.url} is not empty (it holds ${prefix} but no config); refusing to create a store over it`, { url: backend.url });
      }
    }
    const store = new Store(scratchDir, backend, config, options.clock ?? Date.now);
    await store.refs.writeHead({ kind: 'branch', ref: 'refs/heads/main' });
    await store.saveConfig();
    return store;
  }

  /**
   * The store at the other end of a copy (push, fetch, clone: src/sync/), with `scratchDir` a
   * local folder for packs being written. A store without a config is no error here: one that an
   * older ckpt pushed to holds objects and refs only, and the default config stands in. With
   * `create` (a push), such a store is given `create` as its config and a HEAD naming main
   * (createOn).
   */
  static async openRemote(backend: Backend, scratchDir: string, options: StoreOptions & { create?: StoreConfig } = {}): Promise<Store> {
    const bytes = await readConfigBytes(backend);
    if (bytes) return Store.over(scratchDir, backend, parseConfigBytes(backend, bytes), options);
    if (options.create) {
      try {
        return await Store.createOn(backend, scratchDir, options.create, { ...options, adopt: true });
      } catch (e) {
        // another push created it meanwhile
        if ((e as CkptError).code === 'E_EXISTS') return Store.openBackend(backend, scratchDir, options);
        throw e;
      }
    }
    return Store.over(scratchDir, backend, defaultConfig(), options);
  }

  private static async over(dir: string, backend: Backend, config: StoreConfig, options: StoreOptions): Promise<Store> {
    const store = new Store(dir, backend, config, options.clock ?? Date.now);
    // a HEAD that is garbage or names a path out of the store is refused by every command
    await store.refs.readHead().catch((e: unknown) => {
      if (!(e instanceof NotFoundError)) throw e;
    });
    return store;
  }

  async saveConfig(): Promise<void> {
    await this.backend.writeFile('config', Buffer.from(`${JSON.stringify(this.config, null, 2)}\n`, 'utf8'));
  }

  async index(): Promise<ChunkIndex> {
    if (!this.chunkIndex) this.chunkIndex = this.isLocal ? await this.loadLocalIndex() : await ChunkIndex.load(this.backend);
    return this.chunkIndex;
  }

  /**
   * A local store's index: the index files listed in objects/index/, each from the index cache
   * (indexCache.ts) when it has it, else read and verified; the cache is rewritten when it lacked
   * a file or held one no longer listed.
   */
  private async loadLocalIndex(): Promise<ChunkIndex> {
    let ents: Dirent[];
    try {
      ents = await fs.readdir(this.indexDir, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      ents = [];
    }
    checkEntries(this.dir, 'objects/index', ents);
    checkEntries(this.dir, 'objects/packs');
    // what the backend would list: regular files named like index files
    const ids = ents.flatMap((e) => (e.isFile() ? (INDEX_NAME.exec(e.name)?.[1] ?? []) : [])).sort();
    const cacheFile = path.join(this.dir, 'index-cache');
    const cache = readIndexCache(cacheFile);
    const listed: CachedIndexFile[] = [];
    const added: CachedIndexFile[] = [];
    for (const id of ids) {
      let f = cache.files.get(id);
      if (!f) {
        const key = indexKey(id);
        const bytes = await this.backend.get(key).catch((e: unknown) => {
          if (e instanceof NotFoundError) return undefined; // removed by a gc since the listing
          throw e;
        });
        if (!bytes) continue;
        f = { id, ...decodeIndexFile(bytes, whereIs(this.backend, key)) };
        added.push(f);
      }
      listed.push(f);
    }
    // a read never writes the store: the cache catches up when this process writes a pack
    this.indexCacheView = { file: cacheFile, cache, listed, added };
    return ChunkIndex.fromFiles(listed);
  }

  /** What the last load of a local index found in the index cache, for registerPack to update it. */
  private indexCacheView: { file: string; cache: IndexCache; listed: CachedIndexFile[]; added: CachedIndexFile[] } | undefined;

  /**
   * Drops the cached index so packs written by other processes become visible. `verified` reads
   * every index file itself, verified, and not the index cache: what gc and prune check the
   * store with before changing anything.
   */
  async reloadIndex(opts: { verified?: boolean } = {}): Promise<ChunkIndex> {
    this.chunkIndex = undefined;
    if (opts.verified) {
      if (this.isLocal) for (const f of ['objects/index', 'objects/packs'] as const) checkEntries(this.dir, f);
      this.indexCacheView = undefined; // the cache catches up at a later write
      this.chunkIndex = await ChunkIndex.load(this.backend);
    }
    return this.index();
  }

  newPackWriter(): PackWriter {
    return new PackWriter(this.backend, this.tmpDir);
  }

  /** Makes a finished pack's chunks visible to this process. */
  async registerPack(p: FinishedPack): Promise<void> {
    (await this.index()).addPack(p.pack, p.index, p.size, p.records);
    this.meta.usage?.size('index', p.index, p.indexBytes.length);
    // this process wrote an index file: the index cache takes it (and what the load read itself)
    const view = this.indexCacheView;
    if (view) {
      const f: CachedIndexFile = { id: p.index, pack: p.pack, packSize: p.size, records: p.records };
      view.listed.push(f);
      view.added.push(f);
      await updateIndexCache(view.file, this.tmpDir, view.cache, view.listed, view.added);
      view.added = [];
    }
  }

  /** A chunk reader over the store's index, or over `index` (one being checked or extended). */
  async reader(index?: ChunkIndex): Promise<ChunkReader> {
    return new ChunkReader(this.backend, index ?? (await this.index()));
  }

  // --- locks: the gc protocol (storeLocks.ts for a folder; the backend's own elsewhere) ---

  /**
   * The shared lock: commits, checkouts, fsck, fetch and push; gc waits for every holder. Taken
   * again while this Store already holds it (a command that locks, then calls an operation that
   * locks too), it joins the lock held: a second shared lock would wait behind a gc that is itself
   * waiting for the first, and neither would ever go on.
   */
  lockShared(purpose: string, opts?: StoreLockOptions): Promise<Lock> {
    if (!this.shared) {
      const acquiring = this.isLocal ? acquireShared(this.locksDir, purpose, opts) : this.backend.lockShared(purpose);
      const held = { lock: acquiring, holders: 0 };
      this.shared = held;
      acquiring.catch(() => {
        if (this.shared === held) this.shared = undefined;
      });
    }
    const held = this.shared;
    held.holders++;
    return held.lock.then(
      (lock) => {
        let released = false;
        return {
          check: () => lock.check(),
          release: async () => {
            if (released) return;
            released = true;
            if (--held.holders > 0) return;
            if (this.shared === held) this.shared = undefined;
            await lock.release();
          },
        };
      },
      (e: unknown) => {
        held.holders--;
        throw e;
      },
    );
  }

  /** The exclusive lock of gc and prune, held once no shared holder remains. */
  lockExclusive(opts?: StoreLockOptions): Promise<Lock> {
    return this.isLocal ? acquireExclusive(this.locksDir, opts) : this.backend.lockExclusive('gc');
  }

  /** Runs `fn` holding this machine's lock named `name` (one writer at a time, e.g. of Git notes). */
  async withLock<T>(name: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
    return withLock(path.join(this.locksDir, `${name}.lock`), fn, timeoutMs);
  }

  // --- scratch space: a local folder (tmp/ on a local store's filesystem); gc removes files there after an hour ---

  /** A fresh path for a temporary file, to be renamed into place or removed by the caller. */
  async scratchFile(hint: string): Promise<string> {
    await fs.mkdir(this.tmpDir, { recursive: true });
    return tmpName(this.tmpDir, hint);
  }

  /** The scratch folder itself, for a caller that names and reaps its own entries (watch snapshots). */
  async scratchFolder(): Promise<string> {
    await fs.mkdir(this.tmpDir, { recursive: true });
    return this.tmpDir;
  }

  /** Whether `file` lies in the scratch folder. */
  isScratch(file: string): boolean {
    return path.resolve(file).startsWith(this.tmpDir + path.sep);
  }

  /** Removes the files directly in the scratch folder last modified more than `maxAgeMs` before `now`. */
  async sweepScratch(now: number, maxAgeMs: number): Promise<void> {
    for (const name of await listDir(this.tmpDir)) {
      const f = path.join(this.tmpDir, name);
      const st = await fs.stat(f).catch(() => undefined);
      if (st && st.isFile() && now - st.mtimeMs > maxAgeMs) await fs.rm(f, { force: true });
    }
  }

  // --- packs and index files ---

  /** Where a pack lives, for messages. */
  packLocation(id: ObjectId): string {
    return whereIs(this.backend, packKey(id));
  }

  /** Where an index file lives, for messages. */
  indexFileLocation(id: ObjectId): string {
    return whereIs(this.backend, indexKey(id));
  }

  /** Every pack of the store. */
  async listPacks(): Promise<PackFileInfo[]> {
    if (this.isLocal) checkEntries(this.dir, 'objects/packs');
    return (await this.backend.list('objects/packs/')).flatMap((k) => {
      const p = parseKey(k.key);
      return p?.kind === 'pack' ? [{ id: p.name, size: k.size, mtimeMs: k.mtimeMs ?? 0 }] : [];
    });
  }

  /** A pack's size and time, or undefined when there is none. */
  async packInfo(id: ObjectId): Promise<PackFileInfo | undefined> {
    const k = await this.backend.stat(packKey(id));
    return k && { id, size: k.size, mtimeMs: k.mtimeMs ?? 0 };
  }

  /** Opens a pack for reading; undefined when it does not exist, E_CORRUPT when it is not a file. */
  async openPack(id: ObjectId): Promise<PackHandle | undefined> {
    const info = await this.backend.stat(packKey(id));
    if (!info) return undefined;
    let ranges;
    try {
      ranges = await this.backend.openRanges(packKey(id));
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
    const size = info.size;
    return {
      async read(offset, length) {
        const n = Math.max(0, Math.min(length, size - offset));
        return n === 0 ? Buffer.alloc(0) : Buffer.from(await ranges.read(offset, n));
      },
      close: () => ranges.close(),
    };
  }

  /** A pack's bytes as a stream, for hashing it whole. */
  async *packStream(id: ObjectId): AsyncIterable<Buffer> {
    const h = await this.openPack(id);
    if (!h) throw new NotFoundError(`pack ${id}`, { pack: id });
    try {
      for (let off = 0; ; ) {
        const b = await h.read(off, 4 * 1024 * 1024);
        if (b.length === 0) return;
        off += b.length;
        yield b;
      }
    } finally {
      await h.close();
    }
  }

  /** A pack as a body to upload (a local store's file). */
  packBody(id: ObjectId): PutBody {
    return { file: path.join(this.packsDir, `${id}.pack`) };
  }

  /**
   * Takes in a pack: `write` puts the verified bytes at the path it is given (appearing there
   * only once verified). No index file names it yet, so nothing reads it. A local store's.
   */
  async receivePack(id: ObjectId, write: (dest: string) => Promise<void>): Promise<void> {
    await write(path.join(this.packsDir, `${id}.pack`));
  }

  /** Ids of the index files, sorted. */
  async listIndexFiles(): Promise<ObjectId[]> {
    if (this.isLocal) checkEntries(this.dir, 'objects/index');
    return (await this.backend.list('objects/index/'))
      .flatMap((k) => {
        const p = parseKey(k.key);
        return p?.kind === 'index' ? [p.name] : [];
      })
      .sort();
  }

  /** An index file's bytes, unverified, or undefined when it does not exist. */
  async readIndexFile(id: ObjectId): Promise<Buffer | undefined> {
    if (this.isLocal) return readFileOrUndefined(path.join(this.indexDir, `${id}.idx`));
    const info = await this.backend.stat(indexKey(id));
    if (!info) return undefined;
    const r = await this.backend.openRanges(indexKey(id));
    try {
      return info.size === 0 ? Buffer.alloc(0) : Buffer.from(await r.read(0, info.size));
    } finally {
      await r.close();
    }
  }

  async indexFileSize(id: ObjectId): Promise<number> {
    const k = await this.backend.stat(indexKey(id));
    if (!k) throw new NotFoundError(`index file ${id}`, { id });
    return k.size;
  }

  /** Writes an index file (verified against its id): its pack's chunks become visible. */
  async writeIndexFile(id: ObjectId, bytes: Uint8Array): Promise<void> {
    await this.backend.put(indexKey(id), { bytes });
  }

  /** Deletes index files. */
  async deleteIndexFiles(ids: Iterable<ObjectId>): Promise<void> {
    for (const id of ids) await this.backend.delete(indexKey(id));
  }

  /** Deletes packs. Their index files must be gone first. */
  async deletePacks(ids: Iterable<ObjectId>): Promise<void> {
    for (const id of ids) await this.backend.delete(packKey(id));
  }

  // --- metadata objects ---

  /** When a metadata object was written, or undefined when it is not there. */
  async metaTime(id: ObjectId): Promise<number | undefined> {
    const k = await this.backend.stat(metaKey(id));
    return k ? (k.mtimeMs ?? 0) : undefined;
  }

  async deleteMeta(id: ObjectId): Promise<void> {
    await this.backend.delete(metaKey(id));
  }

  // --- refs and reflogs ---

  /**
   * Every ref with its text, sorted: fsck reads them raw, so a ref that is not a commit id is
   * reported instead of refused. A ref that cannot be read goes to `onError`.
   */
  async refFiles(onError: (ref: string, e: Error) => void): Promise<{ ref: string; text: string }[]> {
    const out: { ref: string; text: string }[] = [];
    if (this.isLocal) {
      const walk = async (rel: string): Promise<void> => {
        let ents;
        try {
          ents = await fs.readdir(path.join(this.dir, ...rel.split('/')), { withFileTypes: true });
        } catch {
          return;
        }
        for (const e of ents) {
          const r = `${rel}/${e.name}`;
          if (e.isDirectory()) await walk(r);
          else {
            try {
              out.push({ ref: r, text: ((await readFileOrUndefined(path.join(this.dir, ...r.split('/')))) ?? '').toString('utf8') });
            } catch (err) {
              onError(r, err as Error);
            }
          }
        }
      };
      await walk('refs');
    } else {
      for (const { key } of await this.backend.list('refs/')) {
        try {
          const id = await this.backend.readRef(key);
          if (id) out.push({ ref: key, text: `${id}\n` });
        } catch (err) {
          onError(key, err as Error);
        }
      }
    }
    return out.sort((a, b) => (a.ref < b.ref ? -1 : 1));
  }

  /** Refs that have a reflog, whether or not the ref still exists. */
  async reflogRefs(): Promise<string[]> {
    return (await this.backend.list('logs/')).map((k) => k.key.slice('logs/'.length)).filter((r) => r.startsWith('refs/'));
  }

  /** Deletes the reflogs of every ref under `prefix` (such as refs/parts/<group>). */
  async deleteReflogs(prefix: string): Promise<void> {
    if (!isSafeRefName(prefix) || !prefix.startsWith('refs/')) throw new CkptError('E_USAGE', `not a ref prefix: ${JSON.stringify(prefix)}`);
    if (this.isLocal) await fs.rm(path.join(this.dir, 'logs', ...prefix.split('/')), { recursive: true, force: true });
    else for (const { key } of await this.backend.list(logKey(`${prefix}/`))) await this.backend.delete(key).catch(() => undefined);
  }

  // --- per-machine files: the stat cache, config.local, markers (in the local folder) ---

  /** The stat cache's text (statCache.ts), or undefined when there is none. */
  async readStatCache(): Promise<string | undefined> {
    return (await readFileOrUndefined(path.join(this.dir, 'stat-cache.json')))?.toString('utf8');
  }

  async writeStatCache(text: string): Promise<void> {
    await writeFileAtomic(path.join(this.dir, 'stat-cache.json'), text, this.tmpDir);
  }

  /** `config.local`: credentials and per-machine settings, never shared; {} when absent. */
  async readLocalConfig(): Promise<Record<string, unknown>> {
    const where = path.join(this.dir, 'config.local');
    const b = await readFileOrUndefined(where);
    if (!b) return {};
    try {
      return JSON.parse(b.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new CkptError('E_CORRUPT', `${where} is not valid JSON`, { where });
    }
  }

  /** Replaces `config.local`; it holds credentials, so it is created readable by the owner only. */
  async writeLocalConfig(value: Record<string, unknown>): Promise<void> {
    await writeFileAtomic(path.join(this.dir, 'config.local'), `${JSON.stringify(value, null, 2)}\n`, this.tmpDir, 0o600);
  }

  /** True the first time it is called with `name` in this store (a marker file records it). */
  async firstTime(name: string): Promise<boolean> {
    try {
      await fs.mkdir(this.dir, { recursive: true });
      await fs.writeFile(path.join(this.dir, name), `${new Date().toISOString()}\n`, { flag: 'wx' });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * What the usage cache (usageCache.ts) holds: empty for a store elsewhere. Read by du, which
   * never writes it (the write of a commit does).
   */
  usageEntries(): UsageEntries {
    return this.isLocal ? new UsageCache(path.join(this.dir, 'usage-cache'), this.tmpDir).read() : emptyUsage();
  }

  /**
   * Bytes the store takes, by kind: on disk for a local folder, as the backend lists them
   * elsewhere. `known` gives the sizes of content-addressed files written before (the usage
   * cache), which a local walk takes instead of a stat; a pack's size is its index file's.
   */
  async diskUsage(known?: UsageEntries['sizes']): Promise<StoreDiskUsage> {
    if (this.isLocal) {
      const packs = this.chunkIndex?.packs;
      const sizes = new Map<SizedKind, { get(id: string): number | undefined }>(known);
      if (packs) sizes.set('pack', { get: (id: ObjectId) => packs.get(id)?.size ?? known?.get('pack')?.get(id) });
      return storeDiskUsage(this.dir, { packs: this.packsDir, index: this.indexDir, meta: path.join(this.objectsDir, 'meta') }, sizes);
    }
    const sum = async (prefix: string) => (await this.backend.list(prefix)).reduce((n, k) => n + k.size, 0);
    const [packs, index, meta] = [await sum('objects/packs/'), await sum('objects/index/'), await sum('objects/meta/')];
    const other = (await sum('refs/')) + (await sum('logs/'));
    return { packs, index, meta, other, total: packs + index + meta + other };
  }
}

/** The store's config, parsed; `missing` makes the error when there is none. */
async function readConfig(backend: Backend, missing: () => Error): Promise<StoreConfig> {
  const bytes = await readConfigBytes(backend);
  if (!bytes) throw missing();
  return parseConfigBytes(backend, bytes);
}

async function readConfigBytes(backend: Backend): Promise<Uint8Array | undefined> {
  try {
    return await backend.readFile('config');
  } catch (e) {
    throw ioError(e, whereIs(backend, 'config'));
  }
}

function parseConfigBytes(backend: Backend, bytes: Uint8Array): StoreConfig {
  const where = whereIs(backend, 'config');
  if (bytes.length > MAX_CONFIG_BYTES) throw new CkptError('E_CORRUPT', `${where} is larger than ${MAX_CONFIG_BYTES} bytes`, { file: where });
  return parseConfig(Buffer.from(bytes).toString('utf8'), where);
}
