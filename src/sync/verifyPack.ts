/**
 * Re-hashes every chunk of a received pack before its index file makes it visible: each record
 * is read (adjacent records in one read), decoded and checked against its id. The pack's own hash
 * only proves the bytes are the pack the sender named; this proves the pack holds what its index
 * file says.
 */
import { CorruptObjectError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import { whereIs, type Backend } from '../backend/backend.js';
import { packKey } from '../backend/objectKeys.js';
import { decodeChunk } from '../store/chunkCodec.js';
import type { ChunkRecord } from '../store/packFormat.js';

const RUN_BYTES = 16 * 1024 * 1024;

export async function verifyPackChunks(
  backend: Backend,
  pack: ObjectId,
  records: readonly ChunkRecord[],
  /** Raw bytes of a delta base, verified (from the store or another received pack). */
  base: (id: ObjectId) => Promise<Uint8Array>,
): Promise<void> {
  const where = whereIs(backend, packKey(pack));
  const recs = [...records].sort((a, b) => a.offset - b.offset);
  const reader = await backend.openRanges(packKey(pack));
  try {
    for (let i = 0; i < recs.length; ) {
      const start = recs[i].offset;
      let end = start + recs[i].stored;
      let j = i + 1;
      while (j < recs.length && recs[j].offset >= end && recs[j].offset + recs[j].stored - start <= RUN_BYTES) {
        end = recs[j].offset + recs[j].stored;
        j++;
      }
      let buf: Uint8Array;
      try {
        buf = await reader.read(start, end - start);
      } catch (e) {
        if ((e as { code?: string }).code === 'E_REMOTE' && /runs past the end/.test((e as Error).message)) {
          throw new CorruptObjectError(pack, where, `pack ends before offset ${end}`);
        }
        throw e;
      }
      if (buf.byteLength !== end - start) throw new CorruptObjectError(pack, where, `pack ends before offset ${end}`);
      for (const r of recs.slice(i, j)) {
        const stored = buf.subarray(r.offset - start, r.offset - start + r.stored);
        let raw: Uint8Array;
        try {
          raw = await decodeChunk({ codec: r.codec as never, planes: r.planes, data: stored }, r.raw, r.base ? await base(r.base) : undefined);
        } catch (e) {
          throw new CorruptObjectError(r.id, where, (e as Error).message);
        }
        if (objectId('chunk', raw) !== r.id) throw new CorruptObjectError(r.id, where);
      }
      i = j;
    }
  } finally {
    await reader.close();
  }
}
