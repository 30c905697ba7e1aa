/**
 * The one interface every backend speaks. A backend has the layout of a local store (`objects/`,
 * `refs/`, `logs/`, `config`, `HEAD`, `pruned/`), so a folder, `ckpt serve` and an S3 prefix differ
 * only in how bytes move; the store and sync are written once against this.
 *
 * Shared rules, enforced by every backend (test/backend/backendSuite.ts is the contract):
 * - a key is checked with parseKey / parseStoreFileKey before it is used; anything else is
 *   refused (E_USAGE);
 * - object bytes are verified against their key before they become visible, and whole-object
 *   reads are verified before they are returned;
 * - writes are atomic; putting an object that already exists succeeds without rewriting it;
 * - refs change only through casRef, never through put/delete; reflogs only through casRef;
 * - answers are bounded by what their key may hold (maxResponseBytes, maxStoreFileBytes);
 * - a failure worth another attempt (a cut connection, a 5xx, a stall) is marked transient
 *   (transientError); retrying is the job of one wrapper, retryingBackend.ts, not of a driver.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CkptError, CorruptObjectError, RefConflictError, UsageError } from '../core/errors.js';
import { isObjectId, objectHasher, type ObjectKind } from '../core/objectId.js';
import { parseKey, parseStoreFileKey, verifyObjectKey, type ParsedKey, type StoreFileKind } from './objectKeys.js';
import { fsyncDir } from './atomicFile.js';

export interface KeyInfo {
  key: string;
  size: number;
  /** When the object was last written, where the backend knows it (gc spares younger objects). */
  mtimeMs?: number;
}

export interface RemoteLock {
  release(): Promise<void>;
  /**
   * Throws E_LOCKED when the lock was lost meanwhile (a lease that lapsed or could not be
   * renewed, a lock file or object removed by someone who judged it stale): what follows is not
   * protected, so a writer calls this before it publishes (moves a ref).
   */
  check(): void;
}

export interface GetToFileOptions {
  /** The size the remote's index file gives the object: more (or fewer) bytes is a fault. */
  size?: number;
  /** Called as bytes arrive (progress within one large object); a retried download reports bytes again. */
  onReceived?: (bytes: number) => void;
}

/**
 * `file` is a local path, streamed: a pack is never read whole into memory. `writtenAs` says the
 * caller itself wrote the file and hashed every byte it wrote to the id the key names (a pack
 * writer); a backend on the same disk may then move the file into place instead of hashing it
 * again. Bytes from anywhere else are always verified. `onSent`, when the driver can tell, is
 * called as bytes of the file reach the other side (or are found there from an interrupted
 * upload): progress within one large object. A retried upload may report bytes again.
 */
export type PutBody = { bytes: Uint8Array } | { file: string; writtenAs?: string; onSent?: (bytes: number) => void };

/** One entry of a ref's reflog, written by casRef under the ref's lock (docs/format.md, reflog). */
export interface RefLogEntry {
  /** Milliseconds since the epoch. */
  time: number;
  /** One line of text; whitespace runs become one space. */
  reason: string;
}

/** Reads byte ranges of one object, keeping what makes that cheap (an open file) until closed. */
export interface RangeReader {
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/**
 * Where a store's bytes live. One interface for a local folder, `ckpt serve` and an S3 prefix:
 * the store (src/store/) is written once against it, and sync (src/sync/) copies between two.
 *
 * Keys are those of objectKeys.ts: content-addressed objects (packs, indexes, metadata), refs,
 * reflogs, and the store's small mutable files (config, HEAD, retention marks).
 */
export interface Backend {
  readonly url: string;
  /** Keys under a prefix like 'objects/index/' or 'refs/', sorted; only valid store keys. */
  list(prefix: string): Promise<KeyInfo[]>;
  stat(key: string): Promise<KeyInfo | undefined>;
  /** NotFoundError when missing. A whole-object read is verified; a ranged read cannot be. */
  get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array>;
  /**
   * Ranged reads of one object (a pack) through one open handle or connection; NotFoundError
   * when it is missing. A read that runs past the object's end is E_REMOTE.
   */
  openRanges(key: string): Promise<RangeReader>;
  /** Streams an object into `dest`, verifying it on the way; `dest` appears only when verified. */
  getToFile(key: string, dest: string, opts?: GetToFileOptions): Promise<void>;
  /** Objects only: verified before visible; idempotent for identical content. */
  put(key: string, body: PutBody): Promise<void>;
  /** Objects and retention marks (`pruned/<id>`); deleting a missing one succeeds. */
  delete(key: string): Promise<void>;
  /** The commit id a ref holds, or null. */
  readRef(ref: string): Promise<string | null>;
  /**
   * Compare-and-swap; RefConflictError (with the current value) when the ref is not `expected`.
   * With `log`, the change is appended to the ref's reflog under the same lock, so the ref's lock
   * and reflog are the same whoever moves it.
   */
  casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void>;
  /** A small mutable file of the store (config, HEAD, a reflog, a mark), or undefined. */
  readFile(key: string): Promise<Uint8Array | undefined>;
  /** Replaces a small mutable file whole and atomically (config, HEAD, a mark; not refs, not objects). */
  writeFile(key: string, bytes: Uint8Array): Promise<void>;
  /**
   * Holds the store's shared lock (the gc protocol: commits, pushes, checkouts) until released:
   * a folder's lock file, a lease `ckpt serve` keeps, a lock object in S3. Waits while gc or
   * prune holds the store; E_LOCKED when that lasts too long.
   */
  lockShared(purpose: string): Promise<RemoteLock>;
  /** The store's exclusive lock (gc, prune), granted once no shared lock is live. */
  lockExclusive(purpose: string): Promise<RemoteLock>;
  close?(): Promise<void>;
}

/** Where a key of a backend is, for messages: a path for a local folder, a URL otherwise. */
export function whereIs(backend: Backend, key: string): string {
  return backend.url.startsWith('file:') ? path.join(fileURLToPath(backend.url), ...key.split('/')) : `${backend.url}/${key}`;
}

/** Most bytes a listing, a metadata object or an index file may have when read from a remote. */
export const SMALL_OBJECT_MAX = 64 * 1024 * 1024;
export const REF_OBJECT_MAX = 1024;
/** Most bytes `config`, `HEAD` or a retention mark may have; a reflog may have SMALL_OBJECT_MAX. */
export const STORE_FILE_MAX = 1024 * 1024;
/** A whole pack read into memory (tests, tools); fetch streams packs to disk, bounded by their index. */
export const PACK_READ_MAX = 1024 * 1024 * 1024;

/** What a whole-object answer for `key` may hold at most, by kind. */
export function maxResponseBytes(key: string): number {
  const kind = parseKey(key)?.kind;
  return kind === 'ref' ? REF_OBJECT_MAX : kind === 'pack' ? PACK_READ_MAX : SMALL_OBJECT_MAX;
}

/** What a store file (parseStoreFileKey) may hold at most. */
export function maxStoreFileBytes(key: string): number {
  return parseStoreFileKey(key)?.kind === 'log' ? SMALL_OBJECT_MAX : STORE_FILE_MAX;
}

/** Parses the key of a store file that can be read: config, HEAD, a reflog, a mark. */
export function storeFileKey(key: string): StoreFileKind {
  const parsed = parseStoreFileKey(key);
  if (!parsed) throw new UsageError(`not a store file: ${JSON.stringify(key)}`, { key });
  return parsed.kind;
}

/** Parses the key of a store file written whole: config, HEAD or a mark (reflogs grow only by casRef). */
export function writableStoreFileKey(key: string): StoreFileKind {
  const kind = parseStoreFileKey(key)?.kind;
  if (kind !== 'config' && kind !== 'head' && kind !== 'mark') {
    throw new UsageError(`not a store file written whole: ${JSON.stringify(key)}`, { key });
  }
  return kind;
}

/** Parses a key that may be deleted: an object or a retention mark. */
export function deletableKey(key: string): void {
  if (parseStoreFileKey(key)?.kind !== 'mark') objectKey(key);
}

/** Parses a key that stat may ask about: an object, a ref or a store file. */
export function statableKey(key: string): void {
  if (!parseStoreFileKey(key)) readableKey(key);
}

/** A listing keeps only keys of the store: objects, refs and store files. */
export function isListableKey(key: string): boolean {
  return parseKey(key) !== undefined || parseStoreFileKey(key) !== undefined;
}

export type ObjectKeyKind = Exclude<ParsedKey['kind'], 'ref'>;

/** Parses a key that names an object (pack, index, meta); refuses refs and anything else. */
export function objectKey(key: string): ParsedKey & { kind: ObjectKeyKind } {
  const parsed = parseKey(key);
  if (!parsed) throw new UsageError(`not a store key: ${JSON.stringify(key)}`, { key });
  if (parsed.kind === 'ref') throw new UsageError(`refs change only by compare-and-swap: ${key}`, { key });
  return parsed as ParsedKey & { kind: ObjectKeyKind };
}

/** Parses any readable key: objects and refs. */
export function readableKey(key: string): ParsedKey {
  const parsed = parseKey(key);
  if (!parsed) throw new UsageError(`not a store key: ${JSON.stringify(key)}`, { key });
  return parsed;
}

export function refName(ref: string): string {
  const parsed = parseKey(ref);
  if (!parsed || parsed.kind !== 'ref') throw new UsageError(`not a ref name: ${JSON.stringify(ref)}`, { ref });
  return ref;
}

const PREFIX_RE = /^(?:[A-Za-z0-9._-]+\/)*[A-Za-z0-9._-]*$/;

/** A list prefix is a plain relative path fragment: no `..`, no leading slash, no odd bytes. */
export function listPrefix(prefix: string): string {
  if (!PREFIX_RE.test(prefix) || prefix.split('/').some((p) => p === '.' || p === '..')) {
    throw new UsageError(`not a store prefix: ${JSON.stringify(prefix)}`, { prefix });
  }
  return prefix;
}

export function checkRange(range: { offset: number; length: number }): void {
  const { offset, length } = range;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new UsageError(`bad byte range ${offset}+${length}`, { offset, length });
  }
}

/** What a ref file holds: the commit id and a newline. */
export function encodeRef(id: string): Uint8Array {
  if (!isObjectId(id)) throw new UsageError(`not a commit id: ${JSON.stringify(id)}`);
  return Buffer.from(`${id}\n`, 'utf8');
}

export function decodeRef(ref: string, bytes: Uint8Array): string {
  verifyObjectKey(ref, bytes);
  return Buffer.from(bytes).toString('utf8').trim();
}

export function remoteError(url: string, message: string, data: Record<string, unknown> = {}): CkptError {
  return new CkptError('E_REMOTE', `${url}: ${message}`, { url, ...data });
}

/**
 * A failure another attempt may not meet: the connection broke or was refused, the server had a
 * 5xx, an answer stalled. Drivers mark such errors; retryingBackend.ts retries them.
 */
export function transientError(url: string, message: string, data: Record<string, unknown> = {}): CkptError {
  return new CkptError('E_REMOTE', `${url}: ${message}`, { url, ...data, transient: true });
}

const TRANSIENT_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN']);

/** Whether a Node error is a network failure worth another attempt. */
export function isNetworkFault(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return (code !== undefined && TRANSIENT_CODES.has(code)) || (e as Error | undefined)?.message === 'socket hang up';
}

/** Whether an error is marked transient (transientError, a stall) or is a raw network fault. */
export function isTransient(e: unknown): boolean {
  if (e instanceof CkptError) return e.data.transient === true || e.data.stalled === true;
  return isNetworkFault(e);
}

/** The error casRef throws, in one place so every transport reports a lost race the same way. */
export function refConflict(ref: string, expected: string | null, actual: string | null): RefConflictError {
  return new RefConflictError(ref, expected, actual);
}

/**
 * Verifies bytes received for `key`. Packs and indexes hash as they stream; metadata objects
 * need their decoded `type` to pick the hash domain, so they are checked whole (they are small).
 */
export interface KeyVerifier {
  update(chunk: Uint8Array): void;
  /** Throws CorruptObjectError unless everything fed so far is what the key names. */
  finish(where: string): void;
}

export function keyVerifier(key: string): KeyVerifier {
  const parsed = readableKey(key);
  if (parsed.kind === 'pack' || parsed.kind === 'index') {
    const h = objectHasher(parsed.kind satisfies ObjectKind);
    return {
      update: (c) => void h.update(c),
      finish(where) {
        if (h.hex() !== parsed.name) throw new CorruptObjectError(parsed.name, where);
      },
    };
  }
  const parts: Uint8Array[] = [];
  return {
    update: (c) => void parts.push(c),
    finish(where) {
      try {
        verifyObjectKey(key, Buffer.concat(parts));
      } catch (e) {
        if (e instanceof CorruptObjectError) throw new CorruptObjectError(parsed.name, where, e.data.detail as string);
        throw e;
      }
    },
  };
}

/** Throws CorruptObjectError unless `bytes` is what `key` names, naming `where` it came from. */
export function verifyBytes(key: string, bytes: Uint8Array, where: string): void {
  const v = keyVerifier(key);
  v.update(bytes);
  v.finish(where);
}

/**
 * Writes a stream to `dest` through a temporary file beside it, verifying the bytes against
 * `key` as they pass; `dest` appears (by rename) only when they match. Used by getToFile of
 * every transport, so a half-downloaded or corrupt pack never sits under a valid name.
 */
export async function streamToVerifiedFile(
  key: string,
  source: Readable | AsyncIterable<Uint8Array>,
  dest: string,
  where: string,
  onReceived?: (bytes: number) => void,
): Promise<number> {
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${randomBytes(6).toString('hex')}.part`);
  await fs.mkdir(path.dirname(dest), { recursive: true });
  const v = keyVerifier(key);
  const h = await fs.open(tmp, 'w');
  let size = 0;
  // socket reads come in pieces of 16-64 KiB: written a MiB at a time, in one writev
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    const parts = pending;
    pending = [];
    pendingBytes = 0;
    if (parts.length === 1) await writeAll(h, parts[0]);
    else if (parts.length > 1) await writeAll(h, Buffer.concat(parts));
  };
  try {
    for await (const chunk of source as AsyncIterable<Uint8Array>) {
      v.update(chunk);
      size += chunk.byteLength;
      pending.push(chunk);
      pendingBytes += chunk.byteLength;
      if (pendingBytes >= WRITE_BATCH) await flush();
      onReceived?.(chunk.byteLength);
    }
    await flush();
    v.finish(where);
    await h.sync();
    await h.close();
  } catch (e) {
    await h.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
  try {
    await fs.rename(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await fsyncDir(path.dirname(dest));
  return size;
}

/** Bytes of a download gathered before one write. */
const WRITE_BATCH = 1024 * 1024;

/** FileHandle.write may write less than asked; loop until the chunk is down. */
export async function writeAll(h: fs.FileHandle, chunk: Uint8Array): Promise<void> {
  let off = 0;
  while (off < chunk.byteLength) {
    const { bytesWritten } = await h.write(chunk, off, chunk.byteLength - off);
    off += bytesWritten;
  }
}
