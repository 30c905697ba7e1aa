/**
 * The chunk index: chunk id -> pack and record, loaded from `objects/index/*.idx`. Each index
 * file lists one pack's records and is named by its own hash, so it is verified like any object
 * and can always be rebuilt from the pack's header.
 */
import { decodeCanonical, encodeCanonical } from '../core/canonical.js';
import { CkptError, CorruptObjectError, NotFoundError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import { createLimiter } from '../core/limiter.js';
import { whereIs, type Backend } from '../backend/backend.js';
import type { ChunkRecord } from './packFormat.js';
import { decodeRecords, encodeRecords } from './packFormat.js';

const LOAD_LIMIT = 16;
const INDEX_PREFIX = 'objects/index/';

export interface IndexedChunk extends ChunkRecord {
  pack: ObjectId;
}

export interface IndexFile {
  type: 'index';
  pack: ObjectId;
  packSize: number;
  chunks: Uint8Array;
}

export function encodeIndexFile(pack: ObjectId, packSize: number, records: ChunkRecord[]): { id: ObjectId; bytes: Uint8Array } {
  const bytes = encodeCanonical({ type: 'index', pack, packSize, chunks: encodeRecords(records) });
  return { id: objectId('index', bytes), bytes };
}

export function decodeIndexFile(bytes: Uint8Array, where: string): { pack: ObjectId; packSize: number; records: ChunkRecord[] } {
  let v: IndexFile;
  try {
    v = decodeCanonical<IndexFile>(bytes);
  } catch {
    throw new CkptError('E_CORRUPT', `${where}: not valid msgpack`, { where });
  }
  if (!v || v.type !== 'index' || typeof v.pack !== 'string' || !(v.chunks instanceof Uint8Array)) {
    throw new CkptError('E_CORRUPT', `${where}: not an index file`, { where });
  }
  return { pack: v.pack, packSize: v.packSize, records: decodeRecords(v.chunks, where) };
}

/** A record with its pack, written out field by field (an object spread costs ~4x as much per record). */
function indexed(r: ChunkRecord, pack: ObjectId): IndexedChunk {
  const x: IndexedChunk = { id: r.id, offset: r.offset, stored: r.stored, raw: r.raw, codec: r.codec, planes: r.planes, pack };
  if (r.base) x.base = r.base;
  return x;
}

export class ChunkIndex {
  private readonly chunks = new Map<ObjectId, IndexedChunk>();
  /** pack id -> { index file id, pack size } */
  readonly packs = new Map<ObjectId, { index: ObjectId; size: number }>();

  get size(): number {
    return this.chunks.size;
  }

  has(id: ObjectId): boolean {
    return this.chunks.has(id);
  }

  get(id: ObjectId): IndexedChunk | undefined {
    return this.chunks.get(id);
  }

  entries(): IterableIterator<IndexedChunk> {
    return this.chunks.values();
  }

  /** Further copies of chunks already indexed (left by an interrupted gc), by id. */
  private readonly copies = new Map<ObjectId, IndexedChunk[]>();

  addPack(pack: ObjectId, index: ObjectId, size: number, records: ChunkRecord[]): void {
    this.packs.set(pack, { index, size });
    for (const r of records) {
      if (!this.chunks.has(r.id)) this.chunks.set(r.id, indexed(r, pack));
      else this.copies.set(r.id, [...(this.copies.get(r.id) ?? []), indexed(r, pack)]);
    }
  }

  /**
   * gc may store a chunk again under a new record (coded against another base, chainPlan.ts) and
   * then delete the old index files; a crash in between leaves both copies indexed, and the old
   * one may name a base whose chain, at some depth, reaches a chunk whose index file is already
   * gone. Of several copies, one whose whole base chain resolves is taken: the first in name order
   * if it decodes, else another whose base decodes. Switching a chunk to a decodable copy can make
   * chains through it decodable too, so this repeats until nothing changes.
   */
  private preferDecodableCopies(): void {
    if (this.copies.size === 0) return;
    for (let switched = true; switched; ) {
      switched = false;
      // chunk id -> its current record's whole chain resolves. A switch only turns false into
      // true, so an entry gone stale within a round merely defers a switch to the next round.
      const memo = new Map<ObjectId, boolean>();
      const decodes = (id: ObjectId): boolean => {
        const walked: ObjectId[] = [];
        const onPath = new Set<ObjectId>();
        let ok: boolean;
        for (let x: ObjectId = id; ; ) {
          const known = memo.get(x);
          if (known !== undefined) {
            ok = known;
            break;
          }
          const r = this.chunks.get(x);
          if (!r || onPath.has(x)) {
            ok = false; // missing, or a chain that loops
            break;
          }
          walked.push(x);
          onPath.add(x);
          if (!r.base) {
            ok = true;
            break;
          }
          x = r.base;
        }
        for (const w of walked) memo.set(w, ok);
        return ok;
      };
      for (const [id, copies] of this.copies) {
        if (decodes(id)) continue;
        const cur = this.chunks.get(id)!;
        const ok = copies.find((c) => c !== cur && (!c.base || (c.base !== id && decodes(c.base))));
        if (!ok) continue;
        // the current record goes back among the copies so a later round can still weigh it
        this.copies.set(id, [...copies.filter((c) => c !== ok), cur]);
        this.chunks.set(id, ok);
        switched = true;
        memo.set(id, true);
      }
    }
  }

  /** Loads every index file of the store's backend, each verified against its name on reading. */
  static async load(backend: Backend): Promise<ChunkIndex> {
    const idx = new ChunkIndex();
    // read LOAD_LIMIT at a time (a store not yet gc'd has an index file per commit), added in order
    const limit = createLimiter(LOAD_LIMIT);
    const files = (await backend.list(INDEX_PREFIX)).flatMap(({ key }) => {
      const m = /^objects\/index\/([0-9a-f]{64})\.idx$/.exec(key);
      return m ? [{ id: m[1], key }] : [];
    });
    const reads = files.map(({ key }) =>
      limit(() =>
        backend.get(key).catch((e: unknown) => {
          if (e instanceof NotFoundError) return undefined; // removed by a gc since the listing
          throw e;
        }),
      ),
    );
    reads.forEach((p) => p.catch(() => {})); // each is awaited in turn below
    for (const [i, { id, key }] of files.entries()) {
      const bytes = await reads[i];
      if (!bytes) continue;
      const { pack, packSize, records } = decodeIndexFile(bytes, whereIs(backend, key));
      idx.addPack(pack, id, packSize, records);
    }
    idx.preferDecodableCopies();
    return idx;
  }

  /** The index of these index files (read and verified already), in id order. */
  static fromFiles(files: Iterable<{ id: ObjectId; pack: ObjectId; packSize: number; records: ChunkRecord[] }>): ChunkIndex {
    const idx = new ChunkIndex();
    for (const f of files) idx.addPack(f.pack, f.id, f.packSize, f.records);
    idx.preferDecodableCopies();
    return idx;
  }
}
