/**
 * The object store: packs and their index, metadata objects, refs and their reflogs, config and
 * HEAD, over a backend (src/backend/): the `.ckpt/` folder of a work tree, a folder elsewhere,
 * `ckpt serve` or an S3 prefix. Written once against the Backend interface; a local folder adds
 * only its layout check and its tmp/ beside the packs.
 */
import { promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { CkptError, NotFoundError } from '../core/errors.js';
import { ioError } from '../core/ioError.js';
import { kindOfEntry } from '../backend/atomicFile.js';
import { whereIs, type Backend } from '../backend/backend.js';
import { LocalBackend } from '../backend/localBackend.js';
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
    /** The `.ckpt` directory of a local store; for a store elsewhere, its local cache folder. */
    readonly dir: string,
    readonly backend: Backend,
    public config: StoreConfig,
    readonly clock: () => number,
  ) {
    this.meta = new MetaStore(backend);
    this.refs = new RefStore(backend, clock);
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
    const config = await readConfig(backend, () => new CkptError('E_NOT_A_REPO', `no ckpt store at ${backend.url} (its config is missing)`, { url: backend.url }));
    return Store.over(scratchDir, backend, config, options);
  }

  /**
   * The store at the other end of a copy (push, fetch, clone: src/sync/), with `scratchDir` a
   * local folder for packs being written. A store without a config is no error here: one written
   * by an older ckpt holds objects and refs only, and a backend that serves no store files has
   * none to give; the default config stands in. With `create` (a push), such a store is given
   * `create` as its config, and a HEAD naming main unless it has one, as `ckpt init` writes them.
   */
  static async openRemote(backend: Backend, scratchDir: string, options: StoreOptions & { create?: StoreConfig } = {}): Promise<Store> {
    const bytes = backend.readFile ? await backend.readFile('config') : undefined;
    if (bytes) return Store.over(scratchDir, backend, parseConfigBytes(backend, bytes), options);
    const config = options.create ?? defaultConfig();
    const store = new Store(scratchDir, backend, config, options.clock ?? Date.now);
    if (options.create && backend.writeFile) {
      if (!(await backend.readFile!('HEAD'))) await store.refs.writeHead({ kind: 'branch', ref: 'refs/heads/main' });
      await store.saveConfig();
      return store;
    }
    return backend.readFile ? Store.over(scratchDir, backend, config, options) : store;
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
    await this.backend.writeFile!('config', Buffer.from(`${JSON.stringify(this.config, null, 2)}\n`, 'utf8'));
  }

  async index(): Promise<ChunkIndex> {
    if (!this.chunkIndex) this.chunkIndex = await ChunkIndex.load(this.backend);
    return this.chunkIndex;
  }

  /** Drops the cached index so packs written by other processes become visible. */
  async reloadIndex(): Promise<ChunkIndex> {
    this.chunkIndex = undefined;
    return this.index();
  }

  newPackWriter(): PackWriter {
    return new PackWriter(this.backend, this.tmpDir);
  }

  /** Makes a finished pack's chunks visible to this process. */
  async registerPack(p: FinishedPack): Promise<void> {
    (await this.index()).addPack(p.pack, p.index, p.size, p.records);
  }

  async reader(index?: ChunkIndex): Promise<ChunkReader> {
    return new ChunkReader(this.backend, index ?? (await this.index()));
  }
}

/** The store's config, parsed; `missing` makes the error when there is none. */
async function readConfig(backend: Backend, missing: () => Error): Promise<StoreConfig> {
  const bytes = await backend.readFile!('config');
  if (!bytes) throw missing();
  return parseConfigBytes(backend, bytes);
}

function parseConfigBytes(backend: Backend, bytes: Uint8Array): StoreConfig {
  const where = whereIs(backend, 'config');
  if (bytes.length > MAX_CONFIG_BYTES) throw new CkptError('E_CORRUPT', `${where} is larger than ${MAX_CONFIG_BYTES} bytes`, { file: where });
  return parseConfig(Buffer.from(bytes).toString('utf8'), where);
}
