/**
 * The object store in `.ckpt/`: packs and their index, loose metadata objects, refs, locks and
 * tmp. This is the one place that knows the directory layout.
 */
import { promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { CkptError, NotFoundError } from '../core/errors.js';
import { ioError } from '../core/ioError.js';
import { kindOfEntry, openStoreFile, writeFileAtomic } from '../backend/atomicFile.js';
import { ChunkIndex } from './chunkIndex.js';
import { ChunkReader } from './chunkReader.js';
import { MetaStore } from './metaStore.js';
import { PackWriter, type FinishedPack } from './packWriter.js';
import { RefStore } from './refStore.js';
import { defaultConfig, parseConfig, type StoreConfig } from './storeConfig.js';

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

export class Store {
  readonly meta: MetaStore;
  readonly refs: RefStore;
  private chunkIndex: ChunkIndex | undefined;

  private constructor(
    /** The `.ckpt` directory. */
    readonly dir: string,
    public config: StoreConfig,
    readonly clock: () => number,
  ) {
    this.meta = new MetaStore(path.join(dir, 'objects', 'meta'), this.tmpDir);
    this.refs = new RefStore(dir, clock);
  }

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

  async reader(): Promise<ChunkReader> {
    return new ChunkReader(this.packsDir, await this.index());
  }
}
