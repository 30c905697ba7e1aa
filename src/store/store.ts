/**
 * The object store in `.ckpt/`: packs and their index, loose metadata objects, refs, locks and
 * tmp. This is the one place that knows the directory layout.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';
import { writeFileAtomic } from './atomicFile.js';
import { ChunkIndex } from './chunkIndex.js';
import { ChunkReader } from './chunkReader.js';
import { MetaStore } from './metaStore.js';
import { PackWriter, type FinishedPack } from './packWriter.js';
import { RefStore } from './refStore.js';
import { defaultConfig, parseConfig, type StoreConfig } from './storeConfig.js';

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
    let text: string;
    try {
      text = await fs.readFile(where, 'utf8');
    } catch {
      throw new CkptError('E_NOT_A_REPO', `no ckpt store at ${dir} (run \`ckpt init\`)`, { dir });
    }
    return new Store(dir, parseConfig(text, where), options.clock ?? Date.now);
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
