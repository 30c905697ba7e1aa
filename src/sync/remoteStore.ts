/**
 * The store at the other end of a push, fetch or clone, opened over its backend like any store
 * (src/store/), with a folder of its own in this store's scratch folder for the packs being
 * written to it. A push creates the store it pushes to when it has no config yet: the pushing
 * store's chunk size and compression, and a HEAD naming main.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backend/backend.js';
import { Store } from '../store/store.js';
import { defaultConfig } from '../store/storeConfig.js';

export async function withRemoteStore<T>(backend: Backend, home: Store, opts: { create?: boolean }, fn: (remote: Store) => Promise<T>): Promise<T> {
  const scratch = path.join(await home.scratchFolder(), `remote-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    const create = opts.create ? { ...defaultConfig(home.config.chunkSize), compression: { ...home.config.compression } } : undefined;
    const remote = await Store.openRemote(backend, scratch, { clock: home.clock, ...(create ? { create } : {}) });
    return await fn(remote);
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
}
