/**
 * The one copy between two stores: what the source has and the destination lacks, from the
 * commits (and chunks) wanted. Push (this store to a remote), fetch and clone (a remote to this
 * store) and a partial clone's chunk fetch are each this copy, planned differently.
 *
 * What the destination lacks is learnt from it each time, never cached: the walk from the wanted
 * commits stops at commits it has (it writes commits last and parents first, so it has their
 * history too), and the chunks they name (closed over delta bases) are checked against its index
 * files. A source pack whose every chunk is lacking travels whole, with its index file; the other
 * lacking chunks are copied, still encoded, out of byte ranges of the source's packs into new
 * packs, in pack and offset order, so the same copy builds the same packs.
 *
 * The destination receives in the store's write order (invariant 1): packs, each pack's index
 * file once the pack is in (and, when this process is the receiving store, once every chunk of
 * it was decoded and re-hashed), trees and manifests, commits parents first, and refs last, by
 * compare-and-swap with a reflog entry under the ref's lock, so the ref's lock and reflog are the
 * same whoever moves it. Every object is verified by the receiving backend's put. The
 * destination's shared lock is held throughout, so gc there waits, and so is this store's when
 * it is the source (its packs are read). A copy killed at any point leaves the destination at its
 * old refs; objects already there are skipped, so a re-run moves only what is still missing.
 */
import { promises as fs } from 'node:fs';
import { CkptError, NotFoundError, RefConflictError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { PutBody, RemoteLock } from '../backend/backend.js';
import { indexKey, packKey } from '../backend/objectKeys.js';
import { ChunkReader } from '../store/chunkReader.js';
import type { ChunkRecord } from '../store/packFormat.js';
import { PackWriter } from '../store/packWriter.js';
import type { RefStore } from '../store/refStore.js';
import type { Store } from '../store/store.js';
import { walkNewCommits } from './commitWalk.js';
import { mapLimit, mapOrdered } from './parallel.js';
import { awayChunks, homeChunks, type PackListing, type StoreChunks } from './storeChunks.js';
import { verifyPackChunks } from './verifyPack.js';

/** New packs are cut at this size: big enough for throughput, small enough to resume cheaply. */
const PACK_BYTES = 64 * 1024 * 1024;
/** Records closer than this are read in one request: fewer round trips for a few wasted bytes. */
const MAX_GAP = 256 * 1024;
const MAX_RANGE = 16 * 1024 * 1024;

/** One ref of the destination to move once everything it names is there. */
export interface RefMove {
  ref: string;
  /** The value the ref was read at: the compare-and-swap expects it. */
  expected: ObjectId | null;
  next: ObjectId;
  /** The reflog entry's reason. */
  reason: string;
  /**
   * The ref moved meanwhile, to `actual`: 'retry' moves it from there, 'skip' leaves it alone;
   * throwing refuses. Without it, the conflict is an E_REF_CONFLICT.
   */
  onConflict?(actual: ObjectId | null): Promise<'retry' | 'skip'>;
}

export interface CopyPlan {
  /** Commits the destination is to have, with their history, trees, manifests and chunks. */
  commits?: ObjectId[];
  /** The commits' metadata only: their chunks stay behind (a partial clone reads them later). */
  metadataOnly?: boolean;
  /** Chunks wanted besides (a partial clone's checkout). */
  chunks?: Iterable<ObjectId>;
  refs?: RefMove[];
}

export interface CopyOptions {
  /**
   * Which store this process runs in. Its index is its own; the other's index files are checked
   * before use. When home is the destination, every chunk received is re-hashed before its index
   * file makes it visible: the source is a stranger.
   */
  home: 'src' | 'dst';
  /** What the locks say they are for: push, fetch, ... */
  purpose: string;
  jobs: number;
  /** The caller holds the destination's shared lock already (a checkout fetching chunks). */
  dstLocked?: boolean;
  /** Decides what to copy, once the locks are held. */
  plan(): Promise<CopyPlan>;
  /** Bytes of packs, ranges and metadata moved so far, of the planned total. */
  onProgress?: (done: number, total: number) => void;
}

export interface CopyResult {
  /** New commits the destination received. */
  commits: number;
  meta: number;
  /** Chunks the destination lacked. */
  chunks: number;
  /** Packs that went into the destination (whole source packs and new ones), those it had already, and the bytes of those sent. */
  packs: { whole: number; built: number; reused: number; bytes: number };
  /** Reads of the source's packs: whole packs sent, and byte ranges for new packs. */
  read: { requests: number; bytes: number };
  /** Refs moved, with the value each replaced. */
  refs: { ref: string; old: ObjectId | null; next: ObjectId }[];
}

export async function copyStore(src: Store, dst: Store, opts: CopyOptions): Promise<CopyResult> {
  const held: RemoteLock[] = [];
  try {
    if (opts.home === 'src') held.push(await src.backend.lockShared(opts.purpose));
    const dstLock = opts.dstLocked ? undefined : await dst.backend.lockShared(opts.purpose);
    if (dstLock) held.push(dstLock);
    const plan = await opts.plan();
    const result: CopyResult = { commits: 0, meta: 0, chunks: 0, packs: { whole: 0, built: 0, reused: 0, bytes: 0 }, read: { requests: 0, bytes: 0 }, refs: [] };
    await new Copy(src, dst, opts, result).run(plan);
    for (const move of plan.refs ?? []) {
      // a lease lost while copying (the client stalled past it) no longer keeps gc out
      dstLock?.check();
      const old = await moveRef(dst.refs, move);
      if (old !== false) result.refs.push({ ref: move.ref, old, next: move.next });
    }
    return result;
  } finally {
    for (const lock of held.reverse()) await lock.release();
  }
}

/**
 * Moves a ref by compare-and-swap, the reflog entry written under the ref's lock. A conflict is
 * put to the move's onConflict, a few times at most. Returns the value replaced, or false when
 * the ref was left alone.
 */
export async function moveRef(refs: RefStore, m: RefMove): Promise<ObjectId | null | false> {
  let expected = m.expected;
  for (let attempt = 0; ; attempt++) {
    try {
      await refs.cas(m.ref, expected, m.next, m.reason);
      return expected;
    } catch (e) {
      if (!(e instanceof RefConflictError) || attempt >= 3) throw e;
      const actual = (e.data.actual as ObjectId | null | undefined) ?? null;
      if (actual === m.next) return actual;
      if (!m.onConflict) throw e;
      if ((await m.onConflict(actual)) === 'skip') return false;
      expected = actual;
    }
  }
}

/** A pack that reached the destination; its index file follows. */
type Landed = Pick<PackListing, 'pack' | 'index' | 'size' | 'records' | 'indexBytes'>;

/** Byte range of one source pack, and the lacking records in it. */
interface Range {
  pack: ObjectId;
  offset: number;
  length: number;
  recs: ChunkRecord[];
}

interface ChunkPlan {
  whole: PackListing[];
  ranges: Range[];
  count: number;
  bytes: number;
  dst: StoreChunks;
}

class Copy {
  private done = 0;
  private total = 0;

  constructor(
    private readonly src: Store,
    private readonly dst: Store,
    private readonly opts: CopyOptions,
    private readonly result: CopyResult,
  ) {}

  private get home(): Store {
    return this.opts.home === 'src' ? this.src : this.dst;
  }

  private progress(n: number): void {
    this.done += n;
    this.opts.onProgress?.(this.done, this.total);
  }

  /**
   * Progress within one object of `size` bytes: `add` as its bytes move (never past its size,
   * though a retried transfer reports bytes again), `end` for the rest once it is there.
   */
  private meter(size: number): { add: (n: number) => void; end: () => void } {
    let moved = 0;
    return {
      add: (n) => {
        const step = Math.min(n, size - moved);
        if (step <= 0) return;
        moved += step;
        this.progress(step);
      },
      end: () => {
        if (moved < size) this.progress(size - moved);
        moved = size;
      },
    };
  }

  async run(plan: CopyPlan): Promise<void> {
    const { src, dst } = this;
    const jobs = this.opts.jobs;
    const dstHas = this.metaPresence();
    const walked = await walkNewCommits(
      plan.commits ?? [],
      {
        stop: dstHas,
        // what the receiving home store has already is read there, not carried across
        read: async (id) => (this.home === dst && (await dst.meta.has(id)) ? dst.meta.getRaw(id) : src.meta.getRaw(id)),
        // the source's pruned commits have no chunks left to copy
        skipChunks: this.home === src ? async (id) => (await src.pruned.get(id)) !== undefined : undefined,
      },
      jobs,
    );
    this.result.commits = walked.commits.length;
    const contents = (await mapLimit(walked.contents, jobs, async (id) => ((await dstHas(id)) ? undefined : id))).filter((id): id is ObjectId => !!id);

    const wanted = new Set<ObjectId>(plan.chunks ?? []);
    if (!plan.metadataOnly) for (const id of walked.chunks) wanted.add(id);
    const chunks = wanted.size > 0 ? await this.planChunks(wanted) : undefined;
    this.result.chunks = chunks?.count ?? 0;
    this.total = (chunks?.bytes ?? 0) + [...contents, ...walked.commits].reduce((n, id) => n + walked.meta.get(id)!.byteLength, 0);

    if (chunks) await this.sendChunks(chunks);
    // trees and manifests before the commits naming them; commits parents first
    await mapLimit(contents, jobs, async (id) => {
      await dst.meta.putRaw(id, walked.meta.get(id)!);
      this.progress(walked.meta.get(id)!.byteLength);
    });
    for (const id of walked.commits) {
      await dst.meta.putRaw(id, walked.meta.get(id)!);
      this.progress(walked.meta.get(id)!.byteLength);
    }
    this.result.meta = contents.length + walked.commits.length;
  }

  /**
   * Whether the destination has a metadata object: asked one by one when it is the home store
   * (its own disk); listed once, when first asked, when it is elsewhere.
   */
  private metaPresence(): (id: ObjectId) => Promise<boolean> {
    if (this.home === this.dst) return (id) => this.dst.meta.has(id);
    let listed: Promise<Set<ObjectId>> | undefined;
    return async (id) => {
      listed ??= (async () => {
        const ids = new Set<ObjectId>();
        for await (const x of this.dst.meta.all()) ids.add(x);
        return ids;
      })();
      return (await listed).has(id);
    };
  }

  /**
   * The chunks the destination lacks, closed over delta bases, and how each travels: in a whole
   * source pack when every chunk of that pack is lacking, else in a byte range of its pack.
   */
  private async planChunks(wanted: Set<ObjectId>): Promise<ChunkPlan> {
    const { src, opts } = this;
    const home = await homeChunks(this.home);
    const away = await awayChunks(opts.home === 'src' ? this.dst : src, home, opts.jobs, opts.home === 'dst');
    const [from, to] = opts.home === 'src' ? [home, away] : [away, home];
    const lacking = new Map<ObjectId, { pack: ObjectId; rec: ChunkRecord }>();
    for (const id of wanted) {
      for (let cur: ObjectId | undefined = id; cur && !to.has(cur) && !lacking.has(cur); ) {
        const hit = from.locate(cur);
        if (!hit) throw new NotFoundError(`chunk ${cur} in ${src.backend.url} (that store is incomplete; \`ckpt fsck\` there says more)`, { id: cur, store: src.backend.url });
        lacking.set(cur, hit);
        cur = hit.rec.base;
      }
    }
    const touched = [...new Set([...lacking.values()].map((h) => h.pack))].sort();
    const whole: PackListing[] = [];
    const covered = new Set<ObjectId>();
    for (const pack of touched) {
      const listing = await from.pack(pack);
      if (listing.records.every((r) => lacking.has(r.id))) {
        whole.push(listing);
        for (const r of listing.records) covered.add(r.id);
      }
    }
    const ranges: Range[] = [];
    const rest = [...lacking.values()].filter((h) => !covered.has(h.rec.id));
    rest.sort((a, b) => (a.pack < b.pack ? -1 : a.pack > b.pack ? 1 : a.rec.offset - b.rec.offset));
    for (const { pack, rec } of rest) {
      const last = ranges[ranges.length - 1];
      const end = rec.offset + rec.stored;
      if (last && last.pack === pack && rec.offset >= last.offset + last.length && rec.offset - (last.offset + last.length) <= MAX_GAP && end - last.offset <= MAX_RANGE) {
        last.length = end - last.offset;
        last.recs.push(rec);
      } else ranges.push({ pack, offset: rec.offset, length: rec.stored, recs: [rec] });
    }
    const bytes = whole.reduce((n, p) => n + p.size, 0) + ranges.reduce((n, r) => n + r.length, 0);
    return { whole, ranges, count: lacking.size, bytes, dst: to };
  }

  private async sendChunks(plan: ChunkPlan): Promise<void> {
    const dst = this.dst;
    const verify = this.opts.home === 'dst';
    const landed: Landed[] = [];
    // a received pack is verified as soon as it lands, while others still download, when its
    // delta bases are in it or already in this store; the rest wait for every pack (verifyLanded)
    const index = verify ? await dst.index() : undefined;
    const reader = index ? new ChunkReader(dst.backend, index) : undefined;
    const land = async (p: Landed) => {
      if (!verify) return this.putIndexFile(plan, p);
      const own = new Set(p.records.map((r) => r.id));
      if (!p.records.every((r) => !r.base || own.has(r.base) || plan.dst.has(r.base))) return void landed.push(p);
      index!.addPack(p.pack, p.index, p.size, p.records);
      await verifyPackChunks(dst.backend, p.pack, p.records, (id) => reader!.readCached(id));
      await this.putIndexFile(plan, p);
    };
    try {
      await this.sendPacks(plan, land);
    } catch (e) {
      if (index) await dst.reloadIndex();
      throw e;
    } finally {
      await reader?.close();
    }
    if (verify && landed.length > 0) await this.verifyLanded(plan, landed);
  }

  private async sendPacks(plan: ChunkPlan, land: (p: Landed) => Promise<void>): Promise<void> {
    const { src, dst, result } = this;
    const jobs = this.opts.jobs;

    await mapLimit(plan.whole, jobs, async (p) => {
      const meter = this.meter(p.size);
      if ((await dst.backend.stat(packKey(p.pack)))?.size === p.size) result.packs.reused++;
      else {
        await this.sendWholePack(p, meter.add);
        result.packs.whole++;
        result.packs.bytes += p.size;
        result.read.requests++;
        result.read.bytes += p.size;
      }
      meter.end();
      await land(p);
    });

    if (plan.ranges.length > 0) {
      // a new pack goes to the destination through here: one it has already is not sent again
      const into = {
        put: async (key: string, body: PutBody) => {
          if (await dst.backend.stat(key)) result.packs.reused++;
          else {
            // measured first: a put on this disk moves the file into place
            const size = 'bytes' in body ? body.bytes.byteLength : (await fs.stat(body.file)).size;
            await dst.backend.put(key, body);
            result.packs.built++;
            result.packs.bytes += size;
          }
        },
      };
      let writer: PackWriter | undefined;
      const finish = async () => {
        const fin = await writer?.finish({ withIndex: false });
        writer = undefined;
        if (fin) await land(fin);
      };
      try {
        await mapOrdered(
          plan.ranges,
          jobs,
          (r) => src.backend.get(packKey(r.pack), { offset: r.offset, length: r.length }),
          async (r, bytes) => {
            if (bytes.byteLength !== r.length) {
              throw new CkptError('E_REMOTE', `${src.backend.url}: ${bytes.byteLength} bytes for the range ${r.offset}+${r.length} of pack ${r.pack}`, { pack: r.pack });
            }
            result.read.requests++;
            result.read.bytes += bytes.byteLength;
            for (const rec of r.recs) {
              writer ??= new PackWriter(into, await dst.scratchFolder());
              const stored = bytes.subarray(rec.offset - r.offset, rec.offset - r.offset + rec.stored);
              await writer.add({ id: rec.id, raw: rec.raw, codec: rec.codec, planes: rec.planes, ...(rec.base ? { base: rec.base } : {}) }, stored);
              if (writer.bytes >= PACK_BYTES) await finish();
            }
            this.progress(r.length);
          },
        );
        await finish();
      } catch (e) {
        await writer?.abort();
        throw e;
      }
    }
  }

  /**
   * A source pack, whole: streamed from its file when the source is this machine's store, else
   * downloaded, verified against its name as it streams (and cut off at the size its index file
   * gives), straight into this store's packs or through a scratch file to another backend.
   */
  private async sendWholePack(p: PackListing, moved: (n: number) => void): Promise<void> {
    const { src, dst } = this;
    const key = packKey(p.pack);
    if (src.isLocal) {
      await dst.backend.put(key, { ...src.packBody(p.pack), onSent: moved });
      return;
    }
    if (dst.isLocal) {
      await dst.receivePack(p.pack, (dest) => src.backend.getToFile(key, dest, { size: p.size, onReceived: moved }));
      return;
    }
    const tmp = await dst.scratchFile('pack');
    try {
      await src.backend.getToFile(key, tmp, { size: p.size });
      await dst.backend.put(key, { file: tmp, writtenAs: p.pack, onSent: moved });
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  private async putIndexFile(plan: ChunkPlan, p: Landed): Promise<void> {
    if (!plan.dst.hasIndexFile(p.index)) await this.dst.backend.put(indexKey(p.index), { bytes: p.indexBytes });
  }

  /**
   * Packs received by this store are not visible until every chunk in them decodes to its id
   * (delta bases from the store or from the other packs received); then their index files go in.
   */
  private async verifyLanded(plan: ChunkPlan, landed: Landed[]): Promise<void> {
    const dst = this.dst;
    const index = await dst.index();
    for (const p of landed) index.addPack(p.pack, p.index, p.size, p.records);
    const reader = new ChunkReader(dst.backend, index);
    try {
      await mapLimit(landed, this.opts.jobs, (p) => verifyPackChunks(dst.backend, p.pack, p.records, (id) => reader.readCached(id)));
    } catch (e) {
      await dst.reloadIndex();
      throw e;
    } finally {
      await reader.close();
    }
    for (const p of landed) await this.putIndexFile(plan, p);
  }
}
