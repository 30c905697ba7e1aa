/**
 * `commit-cache`: commit objects a local store has read for its history (`ckpt log`), in one file
 * (cacheFile.ts), so a log of a long history reads one file instead of one per commit. A cache
 * only: an entry is the bytes of a commit object this store wrote (a commit never changes), a
 * commit it lacks (fetched, or older than the cache) is read from its file, and only history
 * display reads through it; fsck, gc and everything else read the object files themselves.
 *
 * Payload: entries back to back, each 32 B commit id, u32 length, the commit object's bytes.
 */
import type { ObjectId } from '../core/objectId.js';
import { appendCacheFile, readCacheFile, rewriteCacheFile } from './cacheFile.js';

const MAGIC = 'CKCC';
const VERSION = 1;
const HEX_ID = /^[0-9a-f]{64}$/;
/** Appended segments beyond this are compacted into one by the next write (a reader checks each). */
const MAX_SEGMENTS = 64;

export class CommitCache {
  private entries: Map<ObjectId, Uint8Array> | undefined;

  /** `tmpDir`: where a compacted cache is written before it replaces the file. */
  constructor(
    private readonly file: string,
    private readonly tmpDir?: string,
  ) {}

  private load(): Map<ObjectId, Uint8Array> {
    if (this.entries) return this.entries;
    const c = readCacheFile(this.file, MAGIC, VERSION);
    const entries = new Map<ObjectId, Uint8Array>();
    try {
      for (const p of c.payloads) {
        for (let at = 0; at < p.length; ) {
          const id = p.toString('hex', at, at + 32);
          const len = p.readUInt32LE(at + 32);
          if (at + 36 + len > p.length) throw new Error('entry past its segment');
          entries.set(id, p.subarray(at + 36, at + 36 + len));
          at += 36 + len;
        }
      }
    } catch {
      entries.clear();
    }
    this.entries = entries;
    return entries;
  }

  /** The commit's bytes, verified when they were cached; undefined when not cached. */
  get(id: ObjectId): Uint8Array | undefined {
    return this.load().get(id);
  }

  /**
   * Records commit `id` (bytes just written and verified against the id) at the end of the cache,
   * creating it when there is none. Called by the write of a commit: a read never writes the
   * store. Failures only cost speed and are ignored.
   */
  async append(id: ObjectId, bytes: Uint8Array): Promise<void> {
    if (!HEX_ID.test(id)) return;
    const payload = Buffer.alloc(36 + bytes.length);
    payload.write(id, 0, 32, 'hex');
    payload.writeUInt32LE(bytes.length, 32);
    payload.set(bytes, 36);
    if (this.tmpDir) {
      // many segments (one per commit) or a damaged one: the intact entries and this one, whole
      const c = readCacheFile(this.file, MAGIC, VERSION);
      if (c.size > 0 && (!c.intact || c.segments >= MAX_SEGMENTS)) {
        await rewriteCacheFile(this.file, MAGIC, VERSION, this.tmpDir, Buffer.concat([...c.payloads, payload]));
        this.entries?.set(id, bytes);
        return;
      }
    }
    await appendCacheFile(this.file, MAGIC, VERSION, payload);
    this.entries?.set(id, bytes);
  }
}
