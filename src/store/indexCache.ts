/**
 * `index-cache`: the records of every index file of a local store, in one file (cacheFile.ts), so
 * loading the chunk index reads one file instead of one per pack (a store not yet gc'd has one
 * per commit), and decodes fixed-width binary instead of msgpack. A cache only: entries are keyed
 * by index file id (the hash of the file's bytes, so an entry never goes stale), the files listed
 * in objects/index/ are what counts, and a file the cache lacks is read and verified as before.
 *
 * Payload: entries back to back, each
 *   32 B index file id, 32 B pack id, f64 pack size, u32 record count, then per record:
 *   32 B chunk id, f64 offset, f64 stored, f64 raw, u32 codec, u32 planes, u8 has base, [32 B base]
 */
import type { ObjectId } from '../core/objectId.js';
import type { ChunkRecord } from './packFormat.js';
import { appendCacheSegment, readCacheFile, rewriteCacheFile } from './cacheFile.js';

const MAGIC = 'CKIC';
const VERSION = 2;

export interface CachedIndexFile {
  id: ObjectId;
  pack: ObjectId;
  packSize: number;
  records: ChunkRecord[];
}

function encode(files: CachedIndexFile[]): Buffer {
  let size = 0;
  for (const f of files) {
    size += 32 + 32 + 8 + 4;
    for (const r of f.records) size += 32 + 24 + 8 + 1 + (r.base ? 32 : 0);
  }
  const b = Buffer.alloc(size);
  let at = 0;
  const id = (hex: string) => (at += b.write(hex, at, 32, 'hex'));
  for (const f of files) {
    id(f.id);
    id(f.pack);
    at = b.writeDoubleLE(f.packSize, at);
    at = b.writeUInt32LE(f.records.length, at);
    for (const r of f.records) {
      id(r.id);
      at = b.writeDoubleLE(r.offset, at);
      at = b.writeDoubleLE(r.stored, at);
      at = b.writeDoubleLE(r.raw, at);
      at = b.writeUInt32LE(r.codec, at);
      at = b.writeUInt32LE(r.planes, at);
      at = b.writeUInt8(r.base ? 1 : 0, at);
      if (r.base) id(r.base);
    }
  }
  return b;
}

function decode(b: Buffer, out: Map<ObjectId, CachedIndexFile>): void {
  let at = 0;
  const id = () => b.toString('hex', at, (at += 32));
  while (at < b.length) {
    const f: CachedIndexFile = { id: id(), pack: id(), packSize: b.readDoubleLE(at), records: [] };
    const n = b.readUInt32LE(at + 8);
    at += 12;
    for (let i = 0; i < n; i++) {
      const r: ChunkRecord = { id: id(), offset: b.readDoubleLE(at), stored: b.readDoubleLE(at + 8), raw: b.readDoubleLE(at + 16), codec: b.readUInt32LE(at + 24), planes: b.readUInt32LE(at + 28) };
      const hasBase = b.readUInt8(at + 32);
      at += 33;
      if (hasBase) r.base = id();
      f.records.push(r);
    }
    out.set(f.id, f);
  }
}

const HEX_ID = /^[0-9a-f]{64}$/;
const U32 = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

function cacheable(f: CachedIndexFile): boolean {
  return (
    HEX_ID.test(f.id) &&
    HEX_ID.test(f.pack) &&
    typeof f.packSize === 'number' &&
    f.records.every(
      (r) =>
        HEX_ID.test(r.id) &&
        [r.offset, r.stored, r.raw].every((n) => typeof n === 'number') &&
        U32(r.codec) &&
        U32(r.planes) &&
        (r.base === undefined || HEX_ID.test(r.base)),
    )
  );
}

export interface IndexCache {
  files: Map<ObjectId, CachedIndexFile>;
  intact: boolean;
  /** Segments in the file: one per pack appended since it was last written whole. */
  segments: number;
}

/** Appended segments beyond this are compacted into one by the next write. */
const MAX_SEGMENTS = 64;

/** The cached index files by id (empty when the cache is missing or of another version). */
export function readIndexCache(file: string): IndexCache {
  const c = readCacheFile(file, MAGIC, VERSION);
  const files = new Map<ObjectId, CachedIndexFile>();
  try {
    for (const p of c.payloads) decode(p, files);
  } catch {
    return { files: new Map(), intact: false, segments: 0 };
  }
  return { files, intact: c.intact, segments: c.segments };
}

/**
 * Brings the cache (as read into `cache`, which is updated to match) up to date with `listed`
 * (every index file there is, in order) after this process read or wrote `added` itself: appends
 * those, or rewrites the cache when it was not intact, holds many files no longer listed (removed
 * by gc) or many appended segments. Called by a process that writes a pack: a read never writes the store.
 */
export async function updateIndexCache(file: string, tmpDir: string, cache: IndexCache, listed: CachedIndexFile[], added: CachedIndexFile[]): Promise<void> {
  // a file this layout cannot hold exactly (damage that still decodes) is simply read each time
  const keep = listed.filter(cacheable);
  const fresh = added.filter(cacheable);
  const gone = cache.files.size + fresh.length - keep.length;
  if (!cache.intact || gone > keep.length / 2 + 16 || (fresh.length && cache.segments >= MAX_SEGMENTS)) {
    await rewriteCacheFile(file, MAGIC, VERSION, tmpDir, encode(keep));
    cache.files = new Map(keep.map((f) => [f.id, f]));
    cache.intact = true;
    cache.segments = 1;
  } else if (fresh.length) {
    await appendCacheSegment(file, encode(fresh));
    for (const f of fresh) cache.files.set(f.id, f);
    cache.segments++;
  }
}
