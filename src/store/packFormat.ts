/**
 * Pack files: "CKPK" + u32 version, the stored chunk records back to back, then a header listing
 * them (canonical msgpack), its u32 length and "CKPH". The trailing header lets a pack be written
 * as a stream and makes every pack self-describing, so the index can be rebuilt from packs alone.
 */
import { decodeCanonical, encodeCanonical } from '../core/canonical.js';
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';

export const PACK_MAGIC = Buffer.from('CKPK');
export const PACK_TRAILER_MAGIC = Buffer.from('CKPH');
export const PACK_VERSION = 1;
export const PACK_PREAMBLE = 8;

/** Where one chunk lives and how it is stored. */
export interface ChunkRecord {
  id: ObjectId;
  offset: number;
  /** Bytes as stored (after the codec). */
  stored: number;
  /** Bytes of the chunk itself. */
  raw: number;
  codec: number;
  planes: number;
  /** Chunk the delta codec XORs against. */
  base?: ObjectId;
}

type RecordTuple = [ObjectId, number, number, number, number, number, ObjectId?];

export function packPreamble(): Uint8Array {
  const b = Buffer.alloc(PACK_PREAMBLE);
  PACK_MAGIC.copy(b, 0);
  b.writeUInt32LE(PACK_VERSION, 4);
  return b;
}

const toTuple = (r: ChunkRecord): RecordTuple =>
  r.base ? [r.id, r.offset, r.stored, r.raw, r.codec, r.planes, r.base] : [r.id, r.offset, r.stored, r.raw, r.codec, r.planes];

const fromTuple = (t: RecordTuple): ChunkRecord => {
  const r: ChunkRecord = { id: t[0], offset: t[1], stored: t[2], raw: t[3], codec: t[4], planes: t[5] };
  if (t[6]) r.base = t[6];
  return r;
};

export function encodeRecords(records: ChunkRecord[]): Uint8Array {
  return encodeCanonical(records.map(toTuple));
}

export function decodeRecords(bytes: Uint8Array, where: string): ChunkRecord[] {
  let v: unknown;
  try {
    v = decodeCanonical(bytes);
  } catch {
    throw new CkptError('E_CORRUPT', `${where}: chunk list is not valid msgpack`, { where });
  }
  if (!Array.isArray(v)) throw new CkptError('E_CORRUPT', `${where}: chunk list is not a list`, { where });
  return (v as RecordTuple[]).map(fromTuple);
}

/** The pack's closing bytes: header, its length, magic. */
export function packTrailer(records: ChunkRecord[]): Uint8Array {
  const header = encodeRecords(records);
  const tail = Buffer.alloc(8);
  tail.writeUInt32LE(header.length, 0);
  PACK_TRAILER_MAGIC.copy(tail, 4);
  return Buffer.concat([header, tail]);
}

/** Reads the chunk list from a pack's last bytes, given a reader of the pack. */
export async function readPackRecords(
  size: number,
  read: (offset: number, length: number) => Promise<Uint8Array>,
  where: string,
): Promise<ChunkRecord[]> {
  if (size < PACK_PREAMBLE + 8) throw new CkptError('E_CORRUPT', `${where}: pack too short (${size} bytes)`, { where });
  const head = Buffer.from(await read(0, PACK_PREAMBLE));
  if (!head.subarray(0, 4).equals(PACK_MAGIC)) throw new CkptError('E_CORRUPT', `${where}: not a ckpt pack`, { where });
  const tail = Buffer.from(await read(size - 8, 8));
  if (!tail.subarray(4).equals(PACK_TRAILER_MAGIC)) {
    throw new CkptError('E_CORRUPT', `${where}: pack trailer missing (truncated?)`, { where });
  }
  const hlen = tail.readUInt32LE(0);
  if (hlen > size - PACK_PREAMBLE - 8) throw new CkptError('E_CORRUPT', `${where}: pack header length ${hlen} too large`, { where });
  const records = decodeRecords(await read(size - 8 - hlen, hlen), where);
  const dataEnd = size - 8 - hlen;
  for (const r of records) {
    if (r.offset < PACK_PREAMBLE || r.offset + r.stored > dataEnd) {
      throw new CkptError('E_CORRUPT', `${where}: record ${r.id} lies outside the pack's data`, { where, id: r.id });
    }
  }
  return records;
}
