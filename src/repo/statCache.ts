/**
 * Like Git's index: remembers, per committed file, the stat fields it had and the manifest it
 * gave, so committing an unchanged file again costs a stat instead of reading every byte. A hit
 * needs device, inode, size, mtime and ctime to match to the nanosecond, the file to have been
 * last modified well before the entry was written (the "racy Git" rule: a write within the same
 * clock tick could leave mtime unchanged), and every chunk of the manifest still stored.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ObjectId } from '../core/objectId.js';
import type { Manifest } from '../core/objects.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import type { Store } from '../store/store.js';

interface Entry {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
  manifest: ObjectId;
  /** When the entry was written, in ms. */
  at: number;
}

/** A file modified less than this long before its entry was written is never trusted. */
const RACY_MS = 2000;

export class StatCache {
  private entries: Record<string, Entry> = {};
  private dirty = false;

  private constructor(private readonly store: Store) {}

  static async load(store: Store): Promise<StatCache> {
    const c = new StatCache(store);
    const text = await store.readStatCache();
    if (text !== undefined) {
      try {
        c.entries = JSON.parse(text) as Record<string, Entry>;
      } catch {
        c.entries = {}; // a torn or foreign cache is only a lost optimisation
      }
    }
    return c;
  }

  private static async fingerprint(file: string) {
    const st = await fs.stat(file, { bigint: true });
    return {
      dev: String(st.dev),
      ino: String(st.ino),
      size: String(st.size),
      mtimeNs: String(st.mtimeNs),
      ctimeNs: String(st.ctimeNs),
      mtimeMs: Number(st.mtimeMs),
    };
  }

  /**
   * The manifest id recorded for `file` when its stat fields are unchanged and it was not modified
   * within RACY_MS of the recording; undefined otherwise.
   */
  async candidate(file: string): Promise<ObjectId | undefined> {
    const e = this.entries[path.resolve(file)];
    if (!e) return undefined;
    const f = await StatCache.fingerprint(file);
    if (e.dev !== f.dev || e.ino !== f.ino || e.size !== f.size || e.mtimeNs !== f.mtimeNs || e.ctimeNs !== f.ctimeNs) return undefined;
    return e.at - f.mtimeMs < RACY_MS ? undefined : e.manifest;
  }

  /** True when every chunk the manifest names is still indexed (gc may have run since). */
  static allChunksIndexed(index: ChunkIndex, manifest: Manifest): boolean {
    return manifest.segments.every((s) => s.chunks.every(([id]) => index.has(id)));
  }

  async record(file: string, manifest: ObjectId, now: number): Promise<void> {
    const f = await StatCache.fingerprint(file);
    this.entries[path.resolve(file)] = { dev: f.dev, ino: f.ino, size: f.size, mtimeNs: f.mtimeNs, ctimeNs: f.ctimeNs, manifest, at: now };
    this.dirty = true;
  }

  async save(): Promise<void> {
    if (this.dirty) await this.store.writeStatCache(JSON.stringify(this.entries));
    this.dirty = false;
  }
}
