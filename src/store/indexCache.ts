/**
 * `index-cache`: every index file of a local store in one file, so that loading the chunk index
 * reads one file instead of one per pack (a store not yet gc'd has one per commit). A cache only:
 * entries are keyed by index file id (the hash of the file's bytes, so an entry never goes stale),
 * the files listed in objects/index/ are what counts, a file the cache lacks is read and verified
 * as before, and a cache that is missing, damaged or of another version is ignored and rewritten.
 *
 *   "CKIC"  u32 version (1)  32-byte BLAKE3 of the body  body
 *   body:   canonical msgpack [[index file id, index file bytes], ...] in id order
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { blake3Hex } from '../core/blake3.js';
import { decodeCanonical, encodeCanonical } from '../core/canonical.js';
import type { ObjectId } from '../core/objectId.js';
import { tmpName } from '../backend/atomicFile.js';

const MAGIC = Buffer.from('CKIC');
const VERSION = 1;
const HEAD = 8 + 32;

/** The cached index files by id; empty when the cache is missing or not intact. */
export function readIndexCache(file: string): Map<ObjectId, Uint8Array> {
  const out = new Map<ObjectId, Uint8Array>();
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return out;
  }
  if (bytes.length < HEAD || !bytes.subarray(0, 4).equals(MAGIC) || bytes.readUInt32LE(4) !== VERSION) return out;
  const body = bytes.subarray(HEAD);
  if (blake3Hex(body) !== bytes.subarray(8, HEAD).toString('hex')) return out;
  try {
    const entries = decodeCanonical<unknown>(body);
    if (!Array.isArray(entries)) return out;
    for (const e of entries) {
      if (Array.isArray(e) && typeof e[0] === 'string' && e[1] instanceof Uint8Array) out.set(e[0], e[1]);
    }
  } catch {
    out.clear();
  }
  return out;
}

/**
 * Replaces the cache with `files`, through a temporary file in `tmpDir` renamed into place (not
 * synced: a cache torn by a crash fails its hash and is rebuilt). Failures are ignored: a store
 * that cannot take the cache (read-only) only loses the speed.
 */
export async function writeIndexCache(file: string, tmpDir: string, files: Array<[ObjectId, Uint8Array]>): Promise<void> {
  const body = encodeCanonical([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const head = Buffer.alloc(HEAD);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(VERSION, 4);
  Buffer.from(blake3Hex(body), 'hex').copy(head, 8);
  const tmp = tmpName(tmpDir, path.basename(file));
  try {
    await fs.writeFile(tmp, Buffer.concat([head, body]), { flag: 'wx' });
    await fs.rename(tmp, file);
  } catch {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
  }
}
