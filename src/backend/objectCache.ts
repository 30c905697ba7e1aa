/**
 * A local folder of immutable, content-addressed objects (index files and metadata objects) read
 * from a store elsewhere, so a second command against that store does not fetch them again.
 *
 * - Verified: every read re-hashes the file against its key; a file that does not match (a torn
 *   write, a flipped bit, someone's edit) is deleted and reported as a miss, never returned.
 * - Bounded: the files of every store under the cache's root count against one byte budget;
 *   when a write takes the total over it, the least recently used files go first (a hit touches
 *   the file's mtime, so mtime order is use order).
 * - Safe to delete at any time, also while a command runs: a missing file or folder is a miss,
 *   and a write that finds its folder gone is skipped. A failing cache (a full disk, no
 *   permission) costs speed, never a command: reads and writes that fail are misses.
 *
 * Mutable things (refs, HEAD, config, reflogs, locks) are never put here: their keys are not
 * content-addressed, so nothing could tell a stale copy from a current one.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { parseKey } from './objectKeys.js';
import { verifyBytes } from './backend.js';

export interface ObjectCacheOptions {
  /** The cache's root, shared by every store; `maxBytes` bounds everything under `<root>/*\/objects/`. */
  root: string;
  /** This store's folder under the root. */
  dir: string;
  maxBytes: number;
  /** Wall-clock time (the LRU order and the age of abandoned partial files). */
  now?: () => number;
}

/** Keys this cache keeps: whole index files and metadata objects. */
export function isCacheableKey(key: string): boolean {
  const kind = parseKey(key)?.kind;
  return kind === 'index' || kind === 'meta';
}

interface Entry {
  file: string;
  size: number;
  usedMs: number;
}

/** What a write into the cache may take at most, relative to the budget: one object never evicts most of it. */
const MAX_OBJECT_SHARE = 1 / 8;
/** An eviction goes this far below the budget, so the next few writes do not evict again. */
const LOW_WATER = 0.9;
/** Partial files older than this were left by a process that died while writing. */
const STALE_PART_MS = 60 * 60 * 1000;

const isMissing = (e: unknown) => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

export class ObjectCache {
  readonly root: string;
  readonly dir: string;
  readonly maxBytes: number;
  private readonly now: () => number;
  /** Everything under the root, loaded on the first write of this process; then kept up to date. */
  private entries: Map<string, Entry> | undefined;
  private total = 0;
  /** Counters for tests and reports. */
  readonly stats = { hits: 0, misses: 0, corrupt: 0, written: 0, evicted: 0 };

  constructor(options: ObjectCacheOptions) {
    this.root = path.resolve(options.root);
    this.dir = path.resolve(options.dir);
    this.maxBytes = options.maxBytes;
    this.now = options.now ?? Date.now;
  }

  /** Where the cached copy of `key` lives (keys are checked by parseKey: no `..`, no separators but `/`). */
  fileOf(key: string): string {
    return path.join(this.dir, ...key.split('/'));
  }

  /** The cached object's bytes, verified against its key; undefined when absent or not what the key names. */
  async read(key: string): Promise<Uint8Array | undefined> {
    if (!isCacheableKey(key)) return undefined;
    const file = this.fileOf(key);
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch {
      this.stats.misses++;
      return undefined; // missing (deleted, evicted, never cached) or unreadable: fetch it
    }
    try {
      verifyBytes(key, bytes, file);
    } catch {
      this.stats.corrupt++;
      this.stats.misses++;
      await fs.rm(file, { force: true }).catch(() => undefined);
      this.forgetEntry(file);
      return undefined;
    }
    this.stats.hits++;
    const t = this.now() / 1000;
    await fs.utimes(file, t, t).catch(() => undefined);
    const e = this.entries?.get(file);
    if (e) e.usedMs = this.now();
    return bytes;
  }

  /**
   * Keeps a copy of an object just read from (or written to) the store. The caller has the bytes
   * verified (a whole-object read of a backend is); they are verified again on every read anyway.
   */
  async write(key: string, bytes: Uint8Array): Promise<void> {
    if (!isCacheableKey(key) || bytes.byteLength > this.maxBytes * MAX_OBJECT_SHARE) return;
    const file = this.fileOf(key);
    try {
      await this.load();
      // called after a miss: a file still listed was deleted behind this process's back
      this.forgetEntry(file);
      await fs.mkdir(path.dirname(file), { recursive: true });
      const part = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.part`);
      await fs.writeFile(part, bytes);
      try {
        await fs.rename(part, file);
      } catch (e) {
        await fs.rm(part, { force: true }).catch(() => undefined);
        throw e;
      }
    } catch {
      return; // the cache was deleted meanwhile, the disk is full, ...: this object is simply not kept
    }
    this.stats.written++;
    this.entries!.set(file, { file, size: bytes.byteLength, usedMs: this.now() });
    this.total += bytes.byteLength;
    if (this.total > this.maxBytes) await this.evict();
  }

  /** Drops the copy of an object deleted from the store. */
  async forget(key: string): Promise<void> {
    if (!isCacheableKey(key)) return;
    const file = this.fileOf(key);
    await fs.rm(file, { force: true }).catch(() => undefined);
    this.forgetEntry(file);
  }

  /** Bytes the cache's objects take, every store of the root counted (after the first write of this process). */
  get bytes(): number {
    return this.total;
  }

  private forgetEntry(file: string): void {
    const e = this.entries?.get(file);
    if (!e) return;
    this.entries!.delete(file);
    this.total -= e.size;
  }

  /** Walks `<root>/<store>/objects/` once per process: sizes and last use of every cached file. */
  private async load(): Promise<void> {
    if (this.entries) return;
    const entries = new Map<string, Entry>();
    let total = 0;
    const now = this.now();
    const walk = async (dir: string): Promise<void> => {
      let ents;
      try {
        ents = await fs.readdir(dir, { withFileTypes: true });
      } catch (e) {
        if (isMissing(e)) return;
        throw e;
      }
      for (const ent of ents) {
        const p = path.join(dir, ent.name);
        if (ent.isDirectory()) await walk(p);
        else if (ent.isFile()) {
          const st = await fs.stat(p).catch(() => undefined);
          if (!st) continue;
          if (ent.name.endsWith('.part')) {
            if (now - st.mtimeMs > STALE_PART_MS) await fs.rm(p, { force: true }).catch(() => undefined);
            continue;
          }
          entries.set(p, { file: p, size: st.size, usedMs: st.mtimeMs });
          total += st.size;
        }
      }
    };
    let stores: string[] = [];
    try {
      stores = await fs.readdir(this.root);
    } catch (e) {
      if (!isMissing(e)) throw e;
    }
    for (const s of stores) await walk(path.join(this.root, s, 'objects'));
    this.entries = entries;
    this.total = total;
  }

  /** Deletes least recently used files until the total is under the low-water mark. */
  private async evict(): Promise<void> {
    const order = [...this.entries!.values()].sort((a, b) => a.usedMs - b.usedMs);
    for (const e of order) {
      if (this.total <= this.maxBytes * LOW_WATER) break;
      await fs.rm(e.file, { force: true }).catch(() => undefined);
      this.entries!.delete(e.file);
      this.total -= e.size;
      this.stats.evicted++;
    }
  }
}
