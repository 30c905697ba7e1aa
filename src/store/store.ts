/**
 * The object store in `.ckpt/`: packs and their index, loose metadata objects, refs, retention
 * marks, locks and tmp. With the other files of src/store/, this is the one place that knows the
 * directory layout: callers elsewhere ask for what they mean (a shared lock, a scratch file, the
 * list of packs, a pack's bytes, the reflogs) and never build a path inside the store
 * (test/docs/storePaths.test.ts).
 */
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { CkptError, NotFoundError } from '../core/errors.js';
import { ioError } from '../core/ioError.js';
import type { ObjectId } from '../core/objectId.js';
import { fsyncDir, kindOfEntry, openStoreFile, readFileOrUndefined, tmpName, writeFileAtomic } from '../backend/atomicFile.js';
import type { PutBody } from '../backend/backend.js';
import { withLock, type Lock } from '../backend/lockFile.js';
import { isSafeRefName } from '../backend/objectKeys.js';
import { acquireExclusive, acquireShared, type StoreLockOptions } from '../backend/storeLocks.js';
import { ChunkIndex } from './chunkIndex.js';
import { ChunkReader } from './chunkReader.js';
import { MetaStore } from './metaStore.js';
import { PackWriter, type FinishedPack } from './packWriter.js';
import { PrunedMarks } from './prunedMarks.js';
import { RefStore } from './refStore.js';
import { StagingPacks } from './stagingPacks.js';
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
 * command would trip over differently; found on open, it is one E_CORRUPT naming the path.
 */
async function checkLayout(dir: string): Promise<void> {
  for (const [rel, want] of LAYOUT) {
    const p = path.join(dir, ...rel.split('/'));
    let st: Stats;
    try {
      st = await fs.lstat(p);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') continue; // its parent is reported
      throw ioError(e, p);
    }
    if (st.isSymbolicLink()) st = await fs.stat(p).catch(() => st);
    const ok = want === 'folder' ? st.isDirectory() : st.isFile();
    if (!ok) throw new CkptError('E_CORRUPT', `${p} is ${st.isFile() ? 'a file' : kindOfEntry(st)}, not a ${want}; the store is damaged (see \`ckpt fsck\`)`, { file: p });
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

  private constructor(
    /** The `.ckpt` directory. */
    readonly dir: string,
    public config: StoreConfig,
    readonly clock: () => number,
  ) {
    this.meta = new MetaStore(path.join(dir, 'objects', 'meta'), this.tmpDir);
    this.refs = new RefStore(dir, clock);
    this.pruned = new PrunedMarks(path.join(dir, 'pruned'), this.tmpDir);
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
    const store = new Store(dir, config, options.clock ?? Date.now);
    await store.refs.writeHead({ kind: 'branch', ref: 'refs/heads/main' });
    await store.saveConfig();
    return store;
  }

  static async open(dir: string, options: StoreOptions = {}): Promise<Store> {
    const where = path.join(dir, 'config');
    const h = await openStoreFile(where);
    if (!h) throw new CkptError('E_NOT_A_REPO', `no ckpt store at ${dir} (run \`ckpt init\`)`, { dir });
    let text: string;
    try {
      if ((await h.stat()).size > MAX_CONFIG_BYTES) throw new CkptError('E_CORRUPT', `${where} is larger than ${MAX_CONFIG_BYTES} bytes`, { file: where });
      text = await h.readFile('utf8');
    } catch (e) {
      throw ioError(e, where);
    } finally {
      await h.close();
    }
    const config = parseConfig(text, where);
    await checkLayout(dir);
    const store = new Store(dir, config, options.clock ?? Date.now);
    // a HEAD that is garbage or names a path out of the store is refused by every command
    await store.refs.readHead().catch((e: unknown) => {
      if (!(e instanceof NotFoundError)) throw e;
    });
    return store;
  }

  async saveConfig(): Promise<void> {
    await writeFileAtomic(path.join(this.dir, 'config'), `${JSON.stringify(this.config, null, 2)}\n`, this.tmpDir);
  }

  async index(): Promise<ChunkIndex> {
    if (!this.chunkIndex) this.chunkIndex = await ChunkIndex.load(this.indexDir);
    return this.chunkIndex;
  }

  /** Drops the cached index so packs written by other processes become visible. */
  async reloadIndex(): Promise<ChunkIndex> {
    this.chunkIndex = undefined;
    return this.index();
  }

  newPackWriter(): PackWriter {
    return new PackWriter(this.objectsDir, this.tmpDir);
  }

  /** Makes a finished pack's chunks visible to this process. */
  async registerPack(p: FinishedPack): Promise<void> {
    (await this.index()).addPack(p.pack, p.index, p.size, p.records);
  }

  /** A chunk reader over the store's index, or over `index` (one being checked or extended). */
  async reader(index?: ChunkIndex): Promise<ChunkReader> {
    return new ChunkReader(this.packsDir, index ?? (await this.index()));
  }

  // --- locks (storeLocks.ts) ---

  /** The shared lock: commits, checkouts, fsck, fetch and push; gc waits for every holder. */
  lockShared(purpose: string, opts?: StoreLockOptions): Promise<Lock> {
    return acquireShared(this.locksDir, purpose, opts);
  }

  /** The exclusive lock of gc and prune, held once no shared holder remains. */
  lockExclusive(opts?: StoreLockOptions): Promise<Lock> {
    return acquireExclusive(this.locksDir, opts);
  }

  /** Runs `fn` holding the store's lock named `name` (one writer at a time, e.g. of Git notes). */
  withLock<T>(name: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
    return withLock(path.join(this.locksDir, `${name}.lock`), fn, timeoutMs);
  }

  // --- scratch space: tmp/, on the store's filesystem; gc removes files there after an hour ---

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

  /** Packs written aside (push, partial fetch) in a scratch folder of their own, named after `hint`. */
  stagingPacks(hint: string): StagingPacks {
    return new StagingPacks(this.tmpDir, hint, this.packsDir, this.indexDir);
  }

  // --- packs and index files as files ---

  /** Where a pack lives, for messages. */
  packLocation(id: ObjectId): string {
    return path.join(this.packsDir, `${id}.pack`);
  }

  /** Where an index file lives, for messages. */
  indexFileLocation(id: ObjectId): string {
    return path.join(this.indexDir, `${id}.idx`);
  }

  /** Every entry of the packs folder named like a pack, in listing order. */
  async listPacks(): Promise<PackFileInfo[]> {
    const out: PackFileInfo[] = [];
    for (const name of await listDir(this.packsDir)) {
      const m = PACK_NAME.exec(name);
      if (!m) continue;
      const st = await fs.stat(path.join(this.packsDir, name));
      out.push({ id: m[1], size: st.size, mtimeMs: st.mtimeMs, ...(st.isFile() ? {} : { notAFile: kindOfEntry(st) }) });
    }
    return out;
  }

  /** A pack's size and time, or undefined when there is none. */
  async packInfo(id: ObjectId): Promise<PackFileInfo | undefined> {
    const st = await fs.stat(this.packLocation(id)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    return st && { id, size: st.size, mtimeMs: st.mtimeMs, ...(st.isFile() ? {} : { notAFile: kindOfEntry(st) }) };
  }

  /** Opens a pack for reading; undefined when it does not exist, E_CORRUPT when it is not a file. */
  async openPack(id: ObjectId): Promise<PackHandle | undefined> {
    const fh = await openStoreFile(this.packLocation(id));
    if (!fh) return undefined;
    return {
      async read(offset, length) {
        const buf = Buffer.allocUnsafe(length);
        let done = 0;
        while (done < length) {
          const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
          if (bytesRead === 0) break;
          done += bytesRead;
        }
        return done === length ? buf : buf.subarray(0, done);
      },
      close: () => fh.close(),
    };
  }

  /** A pack's bytes as a stream, for hashing it whole. */
  packStream(id: ObjectId): AsyncIterable<Buffer> {
    return createReadStream(this.packLocation(id), { highWaterMark: 4 * 1024 * 1024 });
  }

  /** A pack as a body to upload. */
  packBody(id: ObjectId): PutBody {
    return { file: this.packLocation(id) };
  }

  /** An index file as a body to upload. */
  indexFileBody(id: ObjectId): PutBody {
    return { file: this.indexFileLocation(id) };
  }

  /**
   * Takes in a pack: `write` puts the verified bytes at the path it is given (appearing there
   * only once verified). No index file names it yet, so nothing reads it.
   */
  async receivePack(id: ObjectId, write: (dest: string) => Promise<void>): Promise<void> {
    await write(this.packLocation(id));
  }

  /** Ids of the index files, sorted. */
  async listIndexFiles(): Promise<ObjectId[]> {
    return (await listDir(this.indexDir))
      .flatMap((name) => {
        const m = INDEX_NAME.exec(name);
        return m ? [m[1]] : [];
      })
      .sort();
  }

  /** An index file's bytes, unverified, or undefined when it does not exist. */
  readIndexFile(id: ObjectId): Promise<Buffer | undefined> {
    return readFileOrUndefined(this.indexFileLocation(id));
  }

  async indexFileSize(id: ObjectId): Promise<number> {
    return (await fs.stat(this.indexFileLocation(id))).size;
  }

  /** Writes an index file (bytes verified by the caller): its pack's chunks become visible. */
  async writeIndexFile(id: ObjectId, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.indexFileLocation(id), bytes, this.tmpDir);
  }

  /** Deletes index files, then makes the deletions durable. */
  async deleteIndexFiles(ids: Iterable<ObjectId>): Promise<void> {
    await this.deleteAll(this.indexDir, [...ids].map((id) => `${id}.idx`));
  }

  /** Deletes packs, then makes the deletions durable. Their index files must be gone first. */
  async deletePacks(ids: Iterable<ObjectId>): Promise<void> {
    await this.deleteAll(this.packsDir, [...ids].map((id) => `${id}.pack`));
  }

  private async deleteAll(dir: string, names: string[]): Promise<void> {
    for (const n of names) await fs.rm(path.join(dir, n), { force: true });
    if (names.length) await fsyncDir(dir);
  }

  // --- metadata objects as files ---

  /** When a metadata object was written, or undefined when it is not there. */
  async metaTime(id: ObjectId): Promise<number | undefined> {
    return (await fs.stat(this.meta.pathOf(id)).catch(() => undefined))?.mtimeMs;
  }

  async deleteMeta(id: ObjectId): Promise<void> {
    await fs.rm(this.meta.pathOf(id), { force: true });
  }

  // --- refs and reflogs as files ---

  /**
   * Every file under refs/, with its text, sorted: fsck reads them raw, so a ref that is not a
   * commit id is reported instead of refused. A file that cannot be read goes to `onError`.
   */
  async refFiles(onError: (ref: string, e: Error) => void): Promise<{ ref: string; text: string }[]> {
    const out: { ref: string; text: string }[] = [];
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
    return out.sort((a, b) => (a.ref < b.ref ? -1 : 1));
  }

  /** Refs that have a reflog, whether or not the ref still exists. */
  async reflogRefs(): Promise<string[]> {
    const out: string[] = [];
    const base = path.join(this.dir, 'logs');
    const walk = async (rel: string): Promise<void> => {
      let ents;
      try {
        ents = await fs.readdir(path.join(base, rel), { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of ents) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(r);
        else if (r.startsWith('refs/')) out.push(r);
      }
    };
    await walk('');
    return out;
  }

  /** Deletes the reflogs of every ref under `prefix` (such as refs/parts/<group>). */
  async deleteReflogs(prefix: string): Promise<void> {
    if (!isSafeRefName(prefix) || !prefix.startsWith('refs/')) throw new CkptError('E_USAGE', `not a ref prefix: ${JSON.stringify(prefix)}`);
    await fs.rm(path.join(this.dir, 'logs', ...prefix.split('/')), { recursive: true, force: true });
  }

  // --- per-machine files: the stat cache, config.local, markers ---

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
      await fs.writeFile(path.join(this.dir, name), `${new Date().toISOString()}\n`, { flag: 'wx' });
      return true;
    } catch {
      return false;
    }
  }

  /** Bytes the store takes on disk, by kind. */
  diskUsage(): Promise<StoreDiskUsage> {
    return storeDiskUsage(this.dir, { packs: this.packsDir, index: this.indexDir, meta: path.join(this.objectsDir, 'meta') });
  }
}
