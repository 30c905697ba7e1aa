/**
 * `usage-cache`: what `ckpt du` needs of each commit and manifest, and the sizes of the files
 * written, in one file (cacheFile.ts), so du of a long history reads one file instead of a
 * commit, a tree and a manifest per commit and a stat per file. A cache only, keyed by content
 * ids: an entry is a function of its id (a commit, manifest, pack, index file or metadata object
 * never changes), so it never goes stale; what is reachable, pruned, indexed or on disk is read
 * from the store each time, and what the cache lacks is computed from the store itself.
 *
 * Like the other caches, a command that only reads never writes it: the write of a commit object
 * appends what this process wrote (the commit, its new manifests, the sizes of its new files).
 * A damaged segment ends the file for a reader; the next write rewrites the file whole.
 *
 * Payload: entries back to back, each a u8 kind then
 *   1 commit:   32 B commit id, u32 n + n x 32 B parent ids, f64 logical bytes (sum of the tree's
 *               file sizes), u32 n + n x 32 B manifest ids of the tree, u32 n + n x 32 B manifest
 *               ids of the code tree (--with-code; 0 when none)
 *   2 manifest: 32 B manifest id, u32 n + n x 32 B chunk ids (every segment's, in order)
 *   3 file size: u8 kind (1 pack, 2 index file, 3 metadata object), 32 B id, f64 bytes
 */
import type { ObjectId } from '../core/objectId.js';
import { appendCacheFile, readCacheFile, rewriteCacheFile } from './cacheFile.js';

const MAGIC = 'CKUC';
const VERSION = 1;
const HEX_ID = /^[0-9a-f]{64}$/;

export interface CommitUsage {
  parents: ObjectId[];
  /** Sum of the sizes of the tree's files. */
  logical: number;
  /** Manifest ids of the tree's files (a manifest named twice is listed twice). */
  manifests: ObjectId[];
  /** Manifest ids of the code tree's files (--with-code). */
  code: ObjectId[];
}

/** The kinds of content-addressed files whose sizes the cache keeps. */
export type SizedKind = 'pack' | 'index' | 'meta';
const SIZED: SizedKind[] = ['pack', 'index', 'meta'];

export interface UsageEntries {
  commits: Map<ObjectId, CommitUsage>;
  manifests: Map<ObjectId, ObjectId[]>;
  /** kind -> id -> bytes of a content-addressed file as it was written. */
  sizes: Map<SizedKind, Map<ObjectId, number>>;
}

export const emptySizes = (): UsageEntries['sizes'] => new Map(SIZED.map((k) => [k, new Map()]));
export const emptyUsage = (): UsageEntries => ({ commits: new Map(), manifests: new Map(), sizes: emptySizes() });
const sizeCount = (s: UsageEntries['sizes']) => [...s.values()].reduce((n, m) => n + m.size, 0);

export function encodeUsage(e: UsageEntries): Buffer {
  let size = 0;
  for (const c of e.commits.values()) size += 1 + 32 + 4 + 32 * c.parents.length + 8 + 4 + 32 * c.manifests.length + 4 + 32 * c.code.length;
  for (const m of e.manifests.values()) size += 1 + 32 + 4 + 32 * m.length;
  size += sizeCount(e.sizes) * (1 + 1 + 32 + 8);
  const b = Buffer.alloc(size);
  let at = 0;
  const id = (hex: string) => (at += b.write(hex, at, 32, 'hex'));
  const ids = (xs: ObjectId[]) => {
    at = b.writeUInt32LE(xs.length, at);
    for (const x of xs) id(x);
  };
  for (const [cid, c] of e.commits) {
    at = b.writeUInt8(1, at);
    id(cid);
    ids(c.parents);
    at = b.writeDoubleLE(c.logical, at);
    ids(c.manifests);
    ids(c.code);
  }
  for (const [mid, chunks] of e.manifests) {
    at = b.writeUInt8(2, at);
    id(mid);
    ids(chunks);
  }
  for (const [kind, m] of e.sizes) {
    for (const [fid, bytes] of m) {
      at = b.writeUInt8(3, at);
      at = b.writeUInt8(SIZED.indexOf(kind) + 1, at);
      id(fid);
      at = b.writeDoubleLE(bytes, at);
    }
  }
  return b;
}

/** Adds the payload's entries to `out`; throws on a payload that does not decode. */
export function decodeUsage(b: Buffer, out: UsageEntries): void {
  let at = 0;
  const need = (n: number) => {
    if (at + n > b.length) throw new Error('entry past its segment');
  };
  const id = () => {
    need(32);
    return b.toString('hex', at, (at += 32));
  };
  const u32 = () => {
    need(4);
    const n = b.readUInt32LE(at);
    at += 4;
    return n;
  };
  const f64 = () => {
    need(8);
    const n = b.readDoubleLE(at);
    at += 8;
    return n;
  };
  const ids = () => {
    const n = u32();
    need(32 * n);
    const xs: ObjectId[] = new Array(n);
    for (let i = 0; i < n; i++) xs[i] = b.toString('hex', at, (at += 32));
    return xs;
  };
  while (at < b.length) {
    const kind = b.readUInt8(at++);
    if (kind === 1) {
      const cid = id();
      const parents = ids();
      const logical = f64();
      const manifests = ids();
      out.commits.set(cid, { parents, logical, manifests, code: ids() });
    } else if (kind === 2) {
      const mid = id();
      out.manifests.set(mid, ids());
    } else if (kind === 3) {
      need(1);
      const k = SIZED[b.readUInt8(at++) - 1];
      if (!k) throw new Error('unknown file kind');
      const fid = id();
      let m = out.sizes.get(k);
      if (!m) out.sizes.set(k, (m = new Map()));
      m.set(fid, f64());
    } else throw new Error(`unknown entry kind ${kind}`);
  }
}

function valid(e: UsageEntries): boolean {
  for (const [id, c] of e.commits) {
    if (!HEX_ID.test(id) || !Number.isFinite(c.logical) || ![...c.parents, ...c.manifests, ...c.code].every((x) => HEX_ID.test(x))) return false;
  }
  for (const [id, m] of e.manifests) if (!HEX_ID.test(id) || !m.every((x) => HEX_ID.test(x))) return false;
  for (const [k, m] of e.sizes) {
    if (!SIZED.includes(k)) return false;
    for (const [id, n] of m) if (!HEX_ID.test(id) || !Number.isFinite(n)) return false;
  }
  return true;
}

/** Appended segments beyond this are compacted into one by the next write. */
const MAX_SEGMENTS = 64;

export class UsageCache {
  constructor(
    private readonly file: string,
    private readonly tmpDir: string,
  ) {}

  /** Every intact segment's entries (none when the file is missing or of another version). */
  read(): UsageEntries {
    const c = readCacheFile(this.file, MAGIC, VERSION);
    const e = emptyUsage();
    try {
      for (const p of c.payloads) decodeUsage(p, e);
    } catch {
      return emptyUsage();
    }
    return e;
  }

  /**
   * Records entries computed from objects this process wrote or read verified: appended, or,
   * when the file is damaged or has many segments, the file is rewritten whole with its intact
   * entries and these. Failures only cost speed.
   */
  async record(fresh: UsageEntries): Promise<void> {
    if (!valid(fresh)) return;
    const c = readCacheFile(this.file, MAGIC, VERSION);
    // a missing file is created by the first of several writers, the others append to it
    if (c.size === 0 || (c.intact && c.segments < MAX_SEGMENTS)) {
      await appendCacheFile(this.file, MAGIC, VERSION, encodeUsage(fresh));
      return;
    }
    const all = emptyUsage();
    try {
      for (const p of c.payloads) decodeUsage(p, all);
    } catch {
      // a segment that passes its hash yet does not decode: start again
      for (const k of ['commits', 'manifests'] as const) all[k].clear();
      all.sizes = emptySizes();
    }
    mergeUsage(all, fresh);
    await rewriteCacheFile(this.file, MAGIC, VERSION, this.tmpDir, encodeUsage(all));
  }
}

/** Adds `from`'s entries to `into`. */
export function mergeUsage(into: UsageEntries, from: UsageEntries): void {
  for (const [k, v] of from.commits) into.commits.set(k, v);
  for (const [k, v] of from.manifests) into.manifests.set(k, v);
  for (const [kind, m] of from.sizes) {
    let mine = into.sizes.get(kind);
    if (!mine) into.sizes.set(kind, (mine = new Map()));
    for (const [id, v] of m) mine.set(id, v);
  }
}

/** Whether `e` holds no entries. */
export const isEmptyUsage = (e: UsageEntries) => e.commits.size + e.manifests.size + sizeCount(e.sizes) === 0;
