/**
 * `ckpt fsck`: every fault found, each named, instead of stopping at the first (restic check).
 *
 * Structure: index files match their names; every indexed pack exists at the indexed size and
 * its own trailing header agrees with its index; every metadata object matches its id; every ref
 * names a readable commit; every commit in history has its tree and manifests, sizes agree from
 * tree entry to manifest to segment to chunk, and every chunk a kept commit needs (and every
 * delta base) is indexed. With readData, every pack is re-hashed against its name and every chunk
 * decoded and re-hashed against its id.
 */
import type { CkptError } from '../core/errors.js';
import { isObjectId, objectHasher, objectId, type ObjectId } from '../core/objectId.js';
import type { Commit, Manifest, Tree } from '../core/objects.js';
import { ChunkIndex, decodeIndexFile } from '../store/chunkIndex.js';
import { decodeChunk } from '../store/chunkCodec.js';
import { readPackRecords, type ChunkRecord } from '../store/packFormat.js';
import type { PackHandle, Store } from '../store/store.js';
import type { Repository } from './repository.js';

export type FaultKind =
  | 'index-corrupt'
  | 'pack-missing'
  | 'pack-size'
  | 'pack-header'
  | 'pack-hash'
  | 'chunk-corrupt'
  | 'chunk-missing'
  | 'chunk-size'
  | 'meta-corrupt'
  | 'meta-missing'
  | 'size-mismatch'
  | 'ref-corrupt'
  | 'dangling-ref'
  | 'not-a-file';

export interface FsckFault {
  kind: FaultKind;
  message: string;
}

export interface FsckResult {
  ok: boolean;
  faults: FsckFault[];
  /** Harmless findings, such as a pack left unindexed by an interrupted write. */
  notes: string[];
  checked: { packs: number; indexFiles: number; chunks: number; metaObjects: number; commits: number; refs: number; bytesRead: number };
}

export interface FsckOptions {
  readData?: boolean;
}

const short = (id: string) => id.slice(0, 12);

async function hashPack(store: Store, pack: ObjectId): Promise<{ id: ObjectId; bytes: number }> {
  const h = objectHasher('pack');
  let bytes = 0;
  for await (const b of store.packStream(pack)) {
    h.update(b);
    bytes += b.length;
  }
  return { id: h.hex(), bytes };
}

export async function fsck(repo: Repository, opts: FsckOptions = {}): Promise<FsckResult> {
  const lock = await repo.store.lockShared('fsck');
  try {
    return await check(repo, opts);
  } finally {
    await lock.release();
  }
}

async function check(repo: Repository, opts: FsckOptions): Promise<FsckResult> {
  const store = repo.store;
  const faults: FsckFault[] = [];
  const notes: string[] = [];
  const fault = (kind: FaultKind, message: string) => faults.push({ kind, message });
  const checked = { packs: 0, indexFiles: 0, chunks: 0, metaObjects: 0, commits: 0, refs: 0, bytesRead: 0 };

  // index files and the packs they describe
  const index = new ChunkIndex();
  const indexed = new Map<ObjectId, { index: ObjectId; size: number; records: ChunkRecord[] }>();
  for (const id of await store.listIndexFiles()) {
    checked.indexFiles++;
    const where = store.indexFileLocation(id);
    let bytes: Buffer | undefined;
    try {
      bytes = await store.readIndexFile(id);
    } catch (e) {
      fault('index-corrupt', (e as Error).message);
      continue;
    }
    if (!bytes) continue;
    if (objectId('index', bytes) !== id) {
      fault('index-corrupt', `index file ${short(id)} does not match its name (${where})`);
      continue;
    }
    try {
      const { pack, packSize, records } = decodeIndexFile(bytes, where);
      indexed.set(pack, { index: id, size: packSize, records });
      index.addPack(pack, id, packSize, records);
    } catch (e) {
      fault('index-corrupt', (e as Error).message);
    }
  }
  const packFiles = new Map<ObjectId, number>();
  for (const p of await store.listPacks()) {
    if (!p.notAFile) packFiles.set(p.id, p.size);
    else fault('not-a-file', `pack ${short(p.id)} is ${p.notAFile}, not a file: ${store.packLocation(p.id)}`);
  }
  const badPacks = new Set<ObjectId>();
  for (const [pack, info] of indexed) {
    checked.packs++;
    const file = store.packLocation(pack);
    const size = packFiles.get(pack);
    if (size === undefined) {
      fault('pack-missing', `pack ${short(pack)} is missing: ${file} (index ${short(info.index)} lists ${info.records.length} chunks in it)`);
      badPacks.add(pack);
      continue;
    }
    if (size !== info.size) {
      fault('pack-size', `pack ${short(pack)} is ${size} bytes, its index says ${info.size}${size < info.size ? ' (truncated)' : ''}: ${file}`);
      badPacks.add(pack);
      continue;
    }
    const fh = (await store.openPack(pack)) as PackHandle; // a regular file: listed above
    try {
      const recs = await readPackRecords(size, (o, l) => fh.read(o, l), `pack ${short(pack)}`);
      const same = recs.length === info.records.length && recs.every((r, i) => r.id === info.records[i].id && r.offset === info.records[i].offset && r.stored === info.records[i].stored);
      if (!same) fault('pack-header', `pack ${short(pack)}: its header does not agree with index ${short(info.index)}`);
    } catch (e) {
      fault('pack-header', (e as Error).message);
      badPacks.add(pack);
    } finally {
      await fh.close();
    }
  }
  for (const pack of packFiles.keys()) {
    if (!indexed.has(pack)) notes.push(`pack ${short(pack)} is not indexed (left by an interrupted write or repack; gc removes it)`);
  }

  // metadata objects, each against its id
  const badMeta = new Set<ObjectId>();
  for await (const id of store.meta.all()) {
    checked.metaObjects++;
    try {
      await store.meta.getRaw(id);
    } catch (e) {
      badMeta.add(id);
      fault('meta-corrupt', `metadata object ${short(id)} is corrupt: ${(e as CkptError).message}`);
    }
  }

  // refs and HEAD
  const starts: { from: string; id: ObjectId }[] = [];
  const expectCommit = async (from: string, id: ObjectId) => {
    if (badMeta.has(id)) return fault('dangling-ref', `${from} points to ${short(id)}, which is corrupt`);
    if (!(await store.meta.has(id))) return fault('dangling-ref', `${from} points to ${id}, which does not exist`);
    starts.push({ from, id });
  };
  for (const { ref, text } of await store.refFiles((r, err) => fault('ref-corrupt', `${r}: ${err.message}`))) {
    checked.refs++;
    const id = text.trim();
    if (!isObjectId(id)) fault('ref-corrupt', `${ref} does not hold a commit id: ${JSON.stringify(text.slice(0, 80))}`);
    else await expectCommit(ref, id);
  }
  try {
    const head = await store.refs.readHead();
    if (head.kind === 'detached') await expectCommit('HEAD', head.id);
    else await store.refs.read(head.ref); // a folder or a pipe where HEAD's branch should be
  } catch (e) {
    fault('ref-corrupt', `HEAD: ${(e as Error).message}`);
  }

  // history: commits, trees, manifests, chunks
  const pruned = await store.pruned.all();
  const seenCommits = new Set<ObjectId>();
  const checkedTrees = new Map<ObjectId, boolean>();
  const checkedManifests = new Map<ObjectId, boolean>();
  const needed = new Set<ObjectId>();
  const readMeta = async <T extends Commit | Tree | Manifest>(id: ObjectId, type: T['type'], from: string): Promise<T | undefined> => {
    if (badMeta.has(id)) return undefined; // already reported
    try {
      return await store.meta.get<T>(id, type);
    } catch (e) {
      fault('meta-missing', `${type} ${short(id)} (${from}) cannot be read: ${(e as Error).message}`);
      return undefined;
    }
  };
  const checkManifest = async (id: ObjectId, entry: { size: number; hash: string }, from: string, wantChunks: boolean) => {
    let m: Manifest | undefined;
    if (!checkedManifests.has(id)) {
      m = await readMeta<Manifest>(id, 'manifest', from);
      checkedManifests.set(id, Boolean(m));
      if (m) {
        if (m.size !== entry.size || m.hash !== entry.hash) fault('size-mismatch', `${from}: tree says ${entry.size} bytes, manifest ${short(id)} says ${m.size}`);
        const segTotal = m.segments.reduce((n, s) => n + s.len, 0);
        if (segTotal !== m.size) fault('size-mismatch', `manifest ${short(id)} (${from}): segments cover ${segTotal} bytes of ${m.size}`);
        for (const s of m.segments) {
          const sum = s.chunks.reduce((n, c) => n + c[1], 0);
          if (sum !== s.len) fault('size-mismatch', `manifest ${short(id)} (${from}): a segment of ${s.len} bytes has ${sum} bytes of chunks`);
        }
      }
    }
    if (!wantChunks) return;
    m ??= checkedManifests.get(id) ? await store.meta.get<Manifest>(id, 'manifest') : undefined;
    if (!m) return;
    for (const s of m.segments) {
      for (const [cid, len] of s.chunks) {
        if (needed.has(cid)) continue;
        needed.add(cid);
        const rec = index.get(cid);
        if (!rec) fault('chunk-missing', `chunk ${short(cid)} of ${from} is not in any index`);
        else if (badPacks.has(rec.pack)) fault('chunk-missing', `chunk ${short(cid)} of ${from} is in pack ${short(rec.pack)}, which is missing or damaged`);
        else if (rec.raw !== len) fault('chunk-size', `chunk ${short(cid)} of ${from}: indexed as ${rec.raw} bytes, manifest says ${len}`);
      }
    }
  };
  const checkTree = async (id: ObjectId, from: string, wantChunks: boolean) => {
    const key = `${id}:${wantChunks}`;
    if (checkedTrees.has(key)) return;
    const tree = await readMeta<Tree>(id, 'tree', from);
    checkedTrees.set(key, Boolean(tree));
    if (!tree) return;
    for (const [p, e] of Object.entries(tree.files)) await checkManifest(e.manifest, e, `${from}:${p}`, wantChunks);
  };
  const stack = [...starts];
  while (stack.length) {
    const { from, id } = stack.pop()!;
    if (seenCommits.has(id)) continue;
    seenCommits.add(id);
    const c = await readMeta<Commit>(id, 'commit', from);
    if (!c) continue;
    checked.commits++;
    const name = `commit ${short(id)}`;
    await checkTree(c.tree, name, !pruned.has(id));
    if (c.code?.files) await checkTree(c.code.files, `${name} (code)`, true);
    for (const p of c.parents) {
      if (!badMeta.has(p) && !(await store.meta.has(p))) fault('meta-missing', `parent ${short(p)} of ${name} does not exist`);
      else stack.push({ from: `parent of ${name}`, id: p });
    }
  }
  for (const cid of [...needed]) {
    for (let rec = index.get(cid); rec?.base; rec = index.get(rec.base)) {
      if (needed.has(rec.base)) break;
      needed.add(rec.base);
      if (!index.has(rec.base)) fault('chunk-missing', `delta base ${short(rec.base)} of chunk ${short(rec.id)} is not in any index`);
    }
  }
  checked.chunks = needed.size;

  if (opts.readData) await readData(store, indexed, index, badPacks, fault, checked);
  return { ok: faults.length === 0, faults, notes, checked };
}

async function readData(
  store: Store,
  indexed: Map<ObjectId, { records: ChunkRecord[] }>,
  index: ChunkIndex,
  badPacks: Set<ObjectId>,
  fault: (kind: FaultKind, message: string) => void,
  checked: FsckResult['checked'],
): Promise<void> {
  const bases = await store.reader(index);
  try {
    for (const [pack, info] of indexed) {
      if (badPacks.has(pack)) continue;
      const file = store.packLocation(pack);
      const h = await hashPack(store, pack);
      checked.bytesRead += h.bytes;
      if (h.id !== pack) fault('pack-hash', `pack ${short(pack)}: its bytes do not match its name (damaged on disk): ${file}`);
      const fh = await store.openPack(pack);
      if (!fh) {
        fault('pack-missing', `pack ${short(pack)} is missing: ${file}`);
        continue;
      }
      try {
        for (const r of info.records) {
          const stored = await fh.read(r.offset, r.stored);
          try {
            const base = r.base ? await bases.read(r.base) : undefined;
            const raw = await decodeChunk({ codec: r.codec, planes: r.planes, data: stored }, r.raw, base);
            if (objectId('chunk', raw) !== r.id) throw new Error('bytes do not match the id');
          } catch (e) {
            fault('chunk-corrupt', `chunk ${short(r.id)} at offset ${r.offset} of pack ${short(pack)} is damaged: ${(e as Error).message}`);
          }
        }
      } finally {
        await fh.close();
      }
    }
  } finally {
    await bases.close();
  }
}
