/**
 * `commit-cache`: commit objects a local store has read for its history (`ckpt log`), in one file
 * (cacheFile.ts), so a log of a long history reads one file instead of one per commit. A cache
 * only: an entry is the bytes of a commit object that were read and verified against its id (a
 * commit never changes), and only history display reads through it; fsck, gc and everything else
 * read the object files themselves.
 *
 * Payload: entries back to back, each 32 B commit id, u32 length, the commit object's bytes.
 */
import type { ObjectId } from '../core/objectId.js';
import { appendCacheSegment, readCacheFile, rewriteCacheFile } from './cacheFile.js';

const MAGIC = 'CKCC';
const VERSION = 1;
const HEX_ID = /^[0-9a-f]{64}$/;

export class CommitCache {
  private entries: Map<ObjectId, Uint8Array> | undefined;
  private intact = true;
  private pending: Array<[ObjectId, Uint8Array]> = [];

  constructor(
    private readonly file: string,
    private readonly tmpDir: string,
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
      this.intact = c.intact;
    } catch {
      entries.clear();
      this.intact = false;
    }
    this.entries = entries;
    return entries;
  }

  /** The commit's bytes, verified when they were cached; undefined when not cached. */
  get(id: ObjectId): Uint8Array | undefined {
    return this.load().get(id);
  }

  /** Bytes of commit `id`, verified against the id by the caller, to be written by flush(). */
  add(id: ObjectId, bytes: Uint8Array): void {
    const entries = this.load();
    if (entries.has(id) || !HEX_ID.test(id)) return;
    entries.set(id, bytes);
    this.pending.push([id, bytes]);
  }

  /** Writes what was added: appended, or the whole cache rewritten when it was not intact. */
  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const items = this.intact ? this.pending : [...this.load()];
    this.pending = [];
    let size = 0;
    for (const [, b] of items) size += 36 + b.length;
    const payload = Buffer.alloc(size);
    let at = 0;
    for (const [id, b] of items) {
      payload.write(id, at, 32, 'hex');
      payload.writeUInt32LE(b.length, at + 32);
      payload.set(b, at + 36);
      at += 36 + b.length;
    }
    if (this.intact) await appendCacheSegment(this.file, payload);
    else {
      await rewriteCacheFile(this.file, MAGIC, VERSION, this.tmpDir, payload);
      this.intact = true;
    }
  }
}
