/**
 * Re-hashes every chunk of a received pack before its index makes it visible: each record is
 * read (adjacent records in one read), decoded and checked against its id. The pack's own hash
 * only proves the bytes are the pack the sender named; this proves the pack holds what its
 * index says.
 */
import { CorruptObjectError, NotFoundError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import { decodeChunk } from '../store/chunkCodec.js';
import type { ChunkRecord } from '../store/packFormat.js';
import type { Store } from '../store/store.js';

const RUN_BYTES = 16 * 1024 * 1024;

export async function verifyPackChunks(
  store: Store,
  pack: ObjectId,
  records: readonly ChunkRecord[],
  /** Raw bytes of a delta base, verified (from the local store or another received pack). */
  base: (id: ObjectId) => Promise<Uint8Array>,
): Promise<void> {
  const recs = [...records].sort((a, b) => a.offset - b.offset);
  const packFile = store.packLocation(pack);
  const fh = await store.openPack(pack);
  if (!fh) throw new NotFoundError(`pack ${packFile}`, { pack });
  try {
    for (let i = 0; i < recs.length; ) {
      const start = recs[i].offset;
      let end = start + recs[i].stored;
      let j = i + 1;
      while (j < recs.length && recs[j].offset >= end && recs[j].offset + recs[j].stored - start <= RUN_BYTES) {
        end = recs[j].offset + recs[j].stored;
        j++;
      }
      const buf = await fh.read(start, end - start);
      if (buf.length < end - start) throw new CorruptObjectError(pack, packFile, `pack ends before offset ${end}`);
      for (const r of recs.slice(i, j)) {
        const stored = buf.subarray(r.offset - start, r.offset - start + r.stored);
        let raw: Uint8Array;
        try {
          raw = await decodeChunk({ codec: r.codec, planes: r.planes, data: stored }, r.raw, r.base ? await base(r.base) : undefined);
        } catch (e) {
          throw new CorruptObjectError(r.id, packFile, (e as Error).message);
        }
        if (objectId('chunk', raw) !== r.id) throw new CorruptObjectError(r.id, packFile);
      }
      i = j;
    }
  } finally {
    await fh.close();
  }
}
