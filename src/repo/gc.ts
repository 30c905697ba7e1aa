/**
 * `ckpt gc`: mark what the roots reach (reachability.ts), then sweep: packs with no live chunk are
 * deleted, packs with some dead chunks are repacked, unreachable metadata objects are deleted.
 *
 * Safety against concurrent commits (storeLocks.ts): gc holds the exclusive lock and sweeps only
 * while no commit holds a shared one, and every commit reloads the index after taking its shared
 * lock, so no commit can deduplicate against a chunk this sweep deletes. As a second line, no file
 * newer than the moment gc took its lock is ever deleted: whatever a writer that ignored the
 * protocol produced survives.
 *
 * Crash safety follows restic's order: new packs and their index files are made durable first,
 * then the old index files are deleted, then the old packs. At every point each live chunk is
 * reachable through at least one index file whose pack exists; a crash leaves duplicates or
 * unindexed packs, which the next gc removes.
 */
import { CkptError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import { CODEC_DELTA, CODEC_ZIGZAG, encodeChunk } from '../store/chunkCodec.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import { decodeIndexFile } from '../store/chunkIndex.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { Lock } from '../backend/lockFile.js';
import type { Store } from '../store/store.js';
import { planChains } from './chainPlan.js';
import type { PrunedMark } from '../store/prunedMarks.js';
import { findRoots, markReachable, type Reachable, type RootOptions } from './reachability.js';
import type { Repository } from './repository.js';

/** New packs are cut at this size, like the ones commits write. */
const PACK_LIMIT = 128 * 1024 * 1024;
/**
 * Packs below this size are merged once there are SMALL_PACKS_TO_MERGE of them: every commit of a
 * small checkpoint writes its own pack and index file, and a command loads every index file, so
 * thousands of commits would otherwise mean thousands of files read by each one.
 */
const SMALL_PACK = 16 * 1024 * 1024;
const SMALL_PACKS_TO_MERGE = 8;
/** tmp/ files older than this belong to no live operation. */
const TMP_MAX_AGE_MS = 3600_000;

export interface GcOptions extends RootOptions {
  dryRun?: boolean;
  lockTimeoutMs?: number;
  /** Marks to pretend are written (a prune's dry run). */
  assumePruned?: Map<ObjectId, PrunedMark>;
  /** The caller (prune) already holds the exclusive lock. */
  lockHeld?: boolean;
}

export interface GcResult {
  dryRun: boolean;
  commits: { reachable: number; live: number; pruned: number };
  chunks: { live: number; dropped: number };
  packs: { before: number; deleted: number; repacked: number; written: number; after: number };
  meta: { deleted: number };
  /** Pack and index bytes. */
  bytes: { before: number; after: number; freed: number };
}

interface PackInfo {
  pack: ObjectId;
  size: number;
  mtimeMs: number;
  /** Index files describing this pack, with their records. */
  indexes: { id: ObjectId; records: ChunkRecord[]; size: number }[];
}

async function readPackRange(store: Store, pack: ObjectId, offset: number, length: number): Promise<Buffer> {
  const file = store.packLocation(pack);
  const fh = await store.openPack(pack);
  if (!fh) throw new CkptError('E_CORRUPT', `${file} disappeared while gc read it`, { file });
  try {
    const buf = await fh.read(offset, length);
    if (buf.length < length) throw new CkptError('E_CORRUPT', `${file} ends before offset ${offset + length}`, { file });
    return buf;
  } finally {
    await fh.close();
  }
}

/**
 * Every indexed pack present is a regular file of the size its index says: checked before gc or prune
 * changes anything, so damage found later cannot leave a half-done sweep (or a prune's marks
 * without its sweep). Returns the freshly loaded index.
 */
export async function assertPacksIntact(store: Store): Promise<ChunkIndex> {
  const index = await store.reloadIndex({ verified: true }); // every index file read, not the cache
  for (const [pack, { size }] of index.packs) {
    const st = await store.packInfo(pack);
    // a missing pack is left to the reachability check: gc still runs when nothing needs it
    const fault = !st ? undefined : st.notAFile ? `is ${st.notAFile}, not a file` : st.size !== size ? `is ${st.size} bytes, its index says ${size}` : undefined;
    if (fault) {
      const file = store.packLocation(pack);
      throw new CkptError('E_CORRUPT', `${file} ${fault}; nothing was changed, see \`ckpt fsck\``, { file });
    }
  }
  return index;
}

export async function gc(repo: Repository, opts: GcOptions = {}): Promise<GcResult> {
  const store = repo.store;
  const lock: Lock | undefined = opts.lockHeld ? undefined : await store.lockExclusive({ timeoutMs: opts.lockTimeoutMs });
  try {
    // Wall-clock time, compared with file mtimes, not the repository's injectable clock.
    const started = Date.now();
    const index = await assertPacksIntact(store);
    const roots = await findRoots(repo, opts);
    const reach = await markReachable(repo, roots, index, opts.assumePruned);
    if (reach.missing.size > 0) {
      const some = [...reach.missing].slice(0, 3).join(', ');
      throw new CkptError('E_CORRUPT', `${reach.missing.size} chunk(s) needed by kept commits are missing (${some}); gc refuses to run, see \`ckpt fsck\``, {
        missing: [...reach.missing],
      });
    }

    const packs = new Map<ObjectId, PackInfo>();
    for (const p of await store.listPacks()) packs.set(p.id, { pack: p.id, size: p.size, mtimeMs: p.mtimeMs, indexes: [] });
    for (const id of await store.listIndexFiles()) {
      const where = store.indexFileLocation(id);
      const bytes = await store.readIndexFile(id);
      if (!bytes) continue;
      if (objectId('index', bytes) !== id) throw new CkptError('E_CORRUPT', `${where} does not match its name; run \`ckpt fsck\``, { where });
      const { pack, records } = decodeIndexFile(bytes, where);
      packs.get(pack)?.indexes.push({ id, records, size: bytes.length });
    }

    // the newest version of each branch whole, older ones as deltas against newer ones, and no
    // kept chunk coded against one that no kept commit needs (chainPlan.ts)
    const untouchable = (id: ObjectId) => {
      const info = packs.get(index.get(id)?.pack ?? '');
      return !info || info.mtimeMs >= started;
    };
    const plan = planChains(await lineages(repo, roots.refs, reach), reach.direct, index, store.config.compression.maxDeltaChain, untouchable);
    const dtypes = new Map<ObjectId, string>();
    for (const m of reach.manifests.values()) {
      for (const s of m.segments) if (s.t === 'tensor') for (const [id] of s.chunks) if (plan.changed.has(id)) dtypes.set(id, s.dtype);
    }

    let bytesBefore = 0;
    const toDelete: PackInfo[] = [];
    const toRepack: { info: PackInfo; live: ChunkRecord[] }[] = [];
    const small: { info: PackInfo; live: ChunkRecord[] }[] = [];
    let liveChunks = 0;
    for (const info of packs.values()) {
      bytesBefore += info.size + info.indexes.reduce((n, i) => n + i.size, 0);
      const all = info.indexes.flatMap((i) => i.records);
      // of duplicate copies, keep the one the index resolves to
      const seen = new Set<ObjectId>();
      const live = all.filter((r) => {
        if (seen.has(r.id) || !plan.keep.has(r.id) || index.get(r.id)?.pack !== info.pack) return false;
        seen.add(r.id);
        return true;
      });
      liveChunks += live.length;
      if (info.mtimeMs >= started) continue;
      if (live.length === 0) toDelete.push(info);
      else if (live.length < all.length || live.some((r) => plan.changed.has(r.id))) toRepack.push({ info, live });
      else if (info.size < SMALL_PACK) small.push({ info, live });
    }
    if (small.length + toRepack.filter((p) => p.info.size < SMALL_PACK).length >= SMALL_PACKS_TO_MERGE) toRepack.push(...small);
    const deadChunks = index.size - plan.keep.size;

    let written = 0;
    let bytesAfter = bytesBefore;
    for (const p of toDelete) bytesAfter -= p.size + p.indexes.reduce((n, i) => n + i.size, 0);
    if (opts.dryRun) {
      for (const { info, live } of toRepack) {
        bytesAfter -= info.size - live.reduce((n, r) => n + r.stored, 0);
      }
    } else {
      const reader = await store.reader();
      let writer = store.newPackWriter();
      // A repacked pack can come out byte-identical to a pack already on disk (a duplicate left
      // by an interrupted gc), so the same name: that name must then survive the deletions.
      const fresh = new Set<ObjectId>();
      const finish = async () => {
        const fin = await writer.finish();
        if (fin) {
          fresh.add(fin.pack);
          fresh.add(fin.index);
          written++;
          bytesAfter += fin.size;
          bytesAfter += await store.indexFileSize(fin.index);
        }
        writer = store.newPackWriter();
      };
      try {
        for (const { info, live } of toRepack) {
          for (const r of live) {
            if (plan.changed.has(r.id)) {
              // re-coded from the raw bytes, which decoding has verified against the chunk id
              const raw = await reader.readCached(r.id);
              const baseId = plan.changed.get(r.id);
              const base = baseId ? await reader.readCached(baseId) : undefined;
              const cfg = store.config.compression;
              const enc = await encodeChunk(raw, { mode: cfg.mode === 'none' ? 'none' : 'auto', dtype: dtypes.get(r.id), level: cfg.level, base });
              const isDelta = enc.codec === CODEC_DELTA || enc.codec === CODEC_ZIGZAG;
              await writer.add({ id: r.id, raw: r.raw, codec: enc.codec, planes: enc.planes, ...(isDelta ? { base: baseId } : {}) }, enc.data);
              if (writer.bytes >= PACK_LIMIT) await finish();
              continue;
            }
            // decoding proves the copy is sound before it becomes the only one
            await reader.read(r.id);
            const stored = await readPackRange(store, info.pack, r.offset, r.stored);
            await writer.add({ id: r.id, raw: r.raw, codec: r.codec, planes: r.planes, ...(r.base ? { base: r.base } : {}) }, stored);
            if (writer.bytes >= PACK_LIMIT) await finish();
          }
          bytesAfter -= info.size + info.indexes.reduce((n, i) => n + i.size, 0);
        }
        await finish();
      } catch (e) {
        await writer.abort();
        throw e;
      } finally {
        await reader.close();
      }
      // Every kept chunk now has a copy in a new or untouched pack whose chain stays within those
      // packs. The old index files go first, repacked packs' before dead packs': the old copies
      // of re-coded chunks are what name dropped chunks as bases, so they leave before those
      // bases do, and a crash at any point leaves either the old chain whole or the new copy,
      // which the index prefers whenever the old chain no longer resolves (chunkIndex.ts). The
      // pack files go only when no index file names them.
      const gone = [...toRepack.map((x) => x.info), ...toDelete];
      for (const phase of [toRepack.map((x) => x.info), toDelete]) {
        await store.deleteIndexFiles(phase.flatMap((p) => p.indexes.map((i) => i.id)).filter((id) => !fresh.has(id)));
      }
      await store.deletePacks(gone.map((p) => p.pack).filter((id) => !fresh.has(id)));
    }

    let metaDeleted = 0;
    for await (const id of store.meta.all()) {
      if (reach.meta.has(id)) continue;
      const written = await store.metaTime(id);
      if (written === undefined || written >= started) continue;
      metaDeleted++;
      if (!opts.dryRun) await store.deleteMeta(id);
    }
    if (!opts.dryRun) {
      for (const id of reach.pruned.keys()) if (!reach.commits.has(id) && !opts.assumePruned?.has(id)) await store.pruned.remove(id);
      await store.sweepScratch(started, TMP_MAX_AGE_MS);
      await store.reloadIndex();
    }

    return {
      dryRun: Boolean(opts.dryRun),
      commits: { reachable: reach.commits.size, live: reach.live.size, pruned: reach.commits.size - reach.live.size },
      chunks: { live: liveChunks, dropped: Math.max(0, deadChunks) },
      packs: {
        before: packs.size,
        deleted: toDelete.length,
        repacked: toRepack.length,
        written,
        after: packs.size - toDelete.length - toRepack.length + written,
      },
      meta: { deleted: metaDeleted },
      bytes: { before: bytesBefore, after: bytesAfter, freed: bytesBefore - bytesAfter },
    };
  } finally {
    await lock?.release();
  }
}

/**
 * The lineages of chunk positions along the first-parent history of every branch head (and a
 * detached HEAD), the current branch first, versions newest first; pruned commits are skipped.
 */
async function lineages(repo: Repository, refs: Map<string, ObjectId>, reach: Reachable): Promise<ObjectId[][]> {
  const head = await repo.store.refs.readHead();
  const current = head.kind === 'detached' ? 'HEAD' : head.ref;
  const names = [...refs.keys()].filter((r) => r === 'HEAD' || r.startsWith('refs/heads/'));
  names.sort((a, b) => Number(b === current) - Number(a === current));
  const out: ObjectId[][] = [];
  for (const name of names) {
    const byPosition = new Map<string, ObjectId[]>();
    for (let id: ObjectId | undefined = refs.get(name); id; ) {
      const c = reach.commits.get(id);
      if (!c) break;
      const tree = reach.live.has(id) ? reach.trees.get(c.tree) : undefined;
      const paths = tree ? Object.keys(tree.files) : [];
      for (const p of paths) {
        const m = reach.manifests.get(tree!.files[p].manifest);
        if (!m) continue;
        // a single-file commit continues the lineage of a single-file parent whatever its name
        const file = paths.length === 1 ? '' : p;
        m.segments.forEach((s, si) => {
          const key = s.t === 'tensor' ? `${file}\0${s.name}\0${s.dtype}\0${s.shape.join(',')}` : `${file}\0#${si}`;
          s.chunks.forEach(([chunk], i) => {
            const k = `${key}\0${i}`;
            const l = byPosition.get(k);
            if (l) l.push(chunk);
            else byPosition.set(k, [chunk]);
          });
        });
      }
      id = c.parents[0];
    }
    out.push(...byPosition.values());
  }
  return out;
}
