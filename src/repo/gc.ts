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
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import { fsyncDir, kindOfEntry, openStoreFile, readFileOrUndefined } from '../store/atomicFile.js';
import type { ChunkIndex } from '../store/chunkIndex.js';
import { decodeIndexFile } from '../store/chunkIndex.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { Lock } from '../store/lockFile.js';
import { acquireExclusive } from '../store/storeLocks.js';
import type { PrunedMark } from './prunedMarks.js';
import { removePrunedMark } from './prunedMarks.js';
import { findRoots, markReachable, type RootOptions } from './reachability.js';
import type { Repository } from './repository.js';

/** New packs are cut at this size, like the ones commits write. */
const PACK_LIMIT = 128 * 1024 * 1024;
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

async function listDir(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
}

async function readPackRange(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await openStoreFile(file);
  if (!fh) throw new CkptError('E_CORRUPT', `${file} disappeared while gc read it`, { file });
  try {
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) throw new CkptError('E_CORRUPT', `${file} ends before offset ${offset + length}`, { file });
      done += bytesRead;
    }
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
export async function assertPacksIntact(store: Repository['store']): Promise<ChunkIndex> {
  const index = await store.reloadIndex();
  for (const [pack, { size }] of index.packs) {
    const file = path.join(store.packsDir, `${pack}.pack`);
    const st = await fs.stat(file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    // a missing pack is left to the reachability check: gc still runs when nothing needs it
    const fault = !st ? undefined : !st.isFile() ? `is ${kindOfEntry(st)}, not a file` : st.size !== size ? `is ${st.size} bytes, its index says ${size}` : undefined;
    if (fault) throw new CkptError('E_CORRUPT', `${file} ${fault}; nothing was changed, see \`ckpt fsck\``, { file });
  }
  return index;
}

export async function gc(repo: Repository, opts: GcOptions = {}): Promise<GcResult> {
  const store = repo.store;
  const lock: Lock | undefined = opts.lockHeld ? undefined : await acquireExclusive(store.locksDir, { timeoutMs: opts.lockTimeoutMs });
  try {
    // Wall-clock time, compared with file mtimes, not the repository's injectable clock.
    const started = Date.now();
    const index = await assertPacksIntact(store);
    const reach = await markReachable(repo, await findRoots(repo, opts), index, opts.assumePruned);
    if (reach.missing.size > 0) {
      const some = [...reach.missing].slice(0, 3).join(', ');
      throw new CkptError('E_CORRUPT', `${reach.missing.size} chunk(s) needed by kept commits are missing (${some}); gc refuses to run, see \`ckpt fsck\``, {
        missing: [...reach.missing],
      });
    }

    const packs = new Map<ObjectId, PackInfo>();
    for (const name of await listDir(store.packsDir)) {
      const m = /^([0-9a-f]{64})\.pack$/.exec(name);
      if (!m) continue;
      const st = await fs.stat(path.join(store.packsDir, name));
      packs.set(m[1], { pack: m[1], size: st.size, mtimeMs: st.mtimeMs, indexes: [] });
    }
    for (const name of await listDir(store.indexDir)) {
      const m = /^([0-9a-f]{64})\.idx$/.exec(name);
      if (!m) continue;
      const where = path.join(store.indexDir, name);
      const bytes = await readFileOrUndefined(where);
      if (!bytes) continue;
      if (objectId('index', bytes) !== m[1]) throw new CkptError('E_CORRUPT', `${where} does not match its name; run \`ckpt fsck\``, { where });
      const { pack, records } = decodeIndexFile(bytes, where);
      packs.get(pack)?.indexes.push({ id: m[1], records, size: bytes.length });
    }

    let bytesBefore = 0;
    const toDelete: PackInfo[] = [];
    const toRepack: { info: PackInfo; live: ChunkRecord[] }[] = [];
    let liveChunks = 0;
    for (const info of packs.values()) {
      bytesBefore += info.size + info.indexes.reduce((n, i) => n + i.size, 0);
      const all = info.indexes.flatMap((i) => i.records);
      // of duplicate copies, keep the one the index resolves to
      const seen = new Set<ObjectId>();
      const live = all.filter((r) => {
        if (seen.has(r.id) || !reach.chunks.has(r.id) || index.get(r.id)?.pack !== info.pack) return false;
        seen.add(r.id);
        return true;
      });
      liveChunks += live.length;
      if (info.mtimeMs >= started) continue;
      if (live.length === 0) toDelete.push(info);
      else if (live.length < all.length) toRepack.push({ info, live });
    }
    const deadChunks = index.size - reach.chunks.size;

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
          const idxSize = (await fs.stat(path.join(store.indexDir, `${fin.index}.idx`))).size;
          bytesAfter += idxSize;
        }
        writer = store.newPackWriter();
      };
      try {
        for (const { info, live } of toRepack) {
          const file = path.join(store.packsDir, `${info.pack}.pack`);
          for (const r of live) {
            // decoding proves the copy is sound before it becomes the only one
            await reader.read(r.id);
            const stored = await readPackRange(file, r.offset, r.stored);
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
      const gone = [...toDelete, ...toRepack.map((x) => x.info)];
      for (const p of gone) for (const i of p.indexes) if (!fresh.has(i.id)) await fs.rm(path.join(store.indexDir, `${i.id}.idx`), { force: true });
      if (gone.length) await fsyncDir(store.indexDir);
      for (const p of gone) if (!fresh.has(p.pack)) await fs.rm(path.join(store.packsDir, `${p.pack}.pack`), { force: true });
      if (gone.length) await fsyncDir(store.packsDir);
    }

    let metaDeleted = 0;
    for await (const id of store.meta.all()) {
      if (reach.meta.has(id)) continue;
      const file = store.meta.pathOf(id);
      const st = await fs.stat(file).catch(() => undefined);
      if (!st || st.mtimeMs >= started) continue;
      metaDeleted++;
      if (!opts.dryRun) await fs.rm(file, { force: true });
    }
    if (!opts.dryRun) {
      for (const id of reach.pruned.keys()) if (!reach.commits.has(id) && !opts.assumePruned?.has(id)) await removePrunedMark(repo, id);
      for (const name of await listDir(store.tmpDir)) {
        const f = path.join(store.tmpDir, name);
        const st = await fs.stat(f).catch(() => undefined);
        if (st && st.isFile() && started - st.mtimeMs > TMP_MAX_AGE_MS) await fs.rm(f, { force: true });
      }
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
