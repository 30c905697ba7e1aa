/**
 * The file format of the store's caches (index-cache, commit-cache): a header, then segments each
 * verified by its own hash, appended as the cache learns more. A cache only ever holds what was
 * read and verified (or written) already; a segment torn by a crash or damaged on disk fails its
 * hash and is ignored from there on, and the cache is rewritten.
 *
 *   "CK" + 2-letter kind   u32 version
 *   segment: u32 payload length, 32-byte BLAKE3 of the payload, payload
 */
import { promises as fs, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { blake3Hex } from '../core/blake3.js';
import { tmpName } from '../backend/atomicFile.js';

const HEADER = 8;
const SEGMENT_HEAD = 4 + 32;

export interface CacheContents {
  /** The intact segments' payloads, in order. */
  payloads: Buffer[];
  /** False when the file is missing, of another kind or version, or a segment failed its hash. */
  intact: boolean;
  /** Segments read (a writer compacts a cache of many into one). */
  segments: number;
  /** The file's bytes (0 when missing). */
  size: number;
}

function header(magic: string, version: number): Buffer {
  const h = Buffer.alloc(HEADER);
  h.write(magic, 0, 'latin1');
  h.writeUInt32LE(version, 4);
  return h;
}

function segment(payload: Buffer): Buffer {
  const head = Buffer.alloc(SEGMENT_HEAD);
  head.writeUInt32LE(payload.length, 0);
  Buffer.from(blake3Hex(payload), 'hex').copy(head, 4);
  return Buffer.concat([head, payload]);
}

export function readCacheFile(file: string, magic: string, version: number): CacheContents {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    return { payloads: [], intact: false, size: 0, segments: 0 };
  }
  if (bytes.length < HEADER || !bytes.subarray(0, HEADER).equals(header(magic, version))) return { payloads: [], intact: false, size: bytes.length, segments: 0 };
  const payloads: Buffer[] = [];
  for (let at = HEADER; at < bytes.length; ) {
    if (at + SEGMENT_HEAD > bytes.length) return { payloads, intact: false, size: bytes.length, segments: payloads.length };
    const len = bytes.readUInt32LE(at);
    const end = at + SEGMENT_HEAD + len;
    if (end > bytes.length) return { payloads, intact: false, size: bytes.length, segments: payloads.length };
    const payload = bytes.subarray(at + SEGMENT_HEAD, end);
    if (blake3Hex(payload) !== bytes.subarray(at + 4, at + SEGMENT_HEAD).toString('hex')) return { payloads, intact: false, size: bytes.length, segments: payloads.length };
    payloads.push(payload);
    at = end;
  }
  return { payloads, intact: true, size: bytes.length, segments: payloads.length };
}

/** Adds a segment at the end of an intact cache file. Failures only cost speed and are ignored. */
export async function appendCacheSegment(file: string, payload: Buffer): Promise<void> {
  await fs.appendFile(file, segment(payload)).catch(() => undefined);
}

/**
 * Adds a segment at the end of a cache file, creating the file (its header) when there is none.
 * A segment after a damaged one is never read (nor harmful). Failures are ignored.
 */
export async function appendCacheFile(file: string, magic: string, version: number, payload: Buffer): Promise<void> {
  try {
    await fs.writeFile(file, Buffer.concat([header(magic, version), segment(payload)]), { flag: 'wx' });
    return;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return;
  }
  await appendCacheSegment(file, payload);
}

/**
 * Replaces the cache with one segment, through a temporary file in `tmpDir` renamed into place
 * (not synced: a cache torn by a crash fails its hash). Failures only cost speed and are ignored.
 */
export async function rewriteCacheFile(file: string, magic: string, version: number, tmpDir: string, payload: Buffer): Promise<void> {
  const tmp = tmpName(tmpDir, path.basename(file));
  try {
    await fs.mkdir(tmpDir, { recursive: true });
    await fs.writeFile(tmp, Buffer.concat([header(magic, version), segment(payload)]), { flag: 'wx' });
    await fs.rename(tmp, file);
  } catch {
    await fs.rm(tmp, { force: true }).catch(() => undefined);
  }
}
