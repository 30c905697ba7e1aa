/**
 * A remote that is a folder: a bare store (`objects/`, `refs/` directly inside) or, when
 * `<dir>/.ckpt` exists, that repository's store. Also the storage engine of the HTTP server, so
 * both share one implementation of verification, atomic writes and ref compare-and-swap.
 *
 * A missing folder reads as an empty remote and is created by the first write, so a push can
 * start a new remote.
 */
import { closeSync, constants as fsConstants, createReadStream, fstatSync, openSync, promises as fs, readSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CkptError, CorruptObjectError, NotFoundError } from '../core/errors.js';
import { logKey, parseKey } from './objectKeys.js';
import { fsyncDir, kindOfEntry, renameIntoPlace, tmpName, writeFileAtomic } from './atomicFile.js';
import { withLock, type Lock } from './lockFile.js';
import { acquireExclusive, acquireShared } from './storeLocks.js';
import { TooLargeError } from './stallGuard.js';
import {
  checkRange,
  decodeRef,
  deletableKey,
  isListableKey,
  maxStoreFileBytes,
  statableKey,
  storeFileKey,
  writableStoreFileKey,
  REF_OBJECT_MAX,
  encodeRef,
  keyVerifier,
  listPrefix,
  objectKey,
  readableKey,
  refConflict,
  refName,
  remoteError,
  streamToVerifiedFile,
  verifyBytes,
  writeAll,
  maxResponseBytes,
  type GetToFileOptions,
  type KeyInfo,
  type PutBody,
  type RangeReader,
  type RefLogEntry,
  type Backend,
  whereIs,
} from './backend.js';
import { reflogLine } from './reflogLine.js';

/** Partial upload files (putResumable) being written by this process: one writer per key. */
const activeUploads = new Set<string>();

export interface LocalBackendOptions {
  /** How long casRef waits for another writer's ref lock. */
  lockTimeoutMs?: number;
  /** How long lockShared and lockExclusive wait for the other side (default 30 and 10 min). */
  lockWaitMs?: number;
}

const isMissing = (e: unknown) => {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
};

/**
 * Opens a file of the store for reading: undefined when it is missing or a folder (a ref name
 * that is a folder of refs); E_CORRUPT for a pipe, a socket or a device, which a read would block
 * on or never finish. The open never blocks (O_NONBLOCK, which regular files ignore).
 */
async function openRegular(file: string): Promise<{ h: fs.FileHandle; size: number } | undefined> {
  let h: fs.FileHandle;
  try {
    h = await fs.open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (e) {
    if (isMissing(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw e;
  }
  try {
    const st = await h.stat();
    if (st.isDirectory()) {
      await h.close();
      return undefined;
    }
    if (!st.isFile()) throw new CkptError('E_CORRUPT', `${file} is ${kindOfEntry(st)}, not a file`, { file });
    return { h, size: st.size };
  } catch (e) {
    await h.close().catch(() => undefined);
    throw e;
  }
}

/** Exactly `length` bytes at `offset`, or fewer when the file ends first. */
async function readAt(h: fs.FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await h.read(buf, got, length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/** Files up to this size are read with blocking calls (readSmall); larger ones through the thread pool. */
const SMALL_FILE = 256 * 1024;
const LARGE = Symbol('large');

/**
 * readBounded for a small file, with blocking calls: metadata objects, refs and index files are a
 * few hundred bytes to a few KiB, and a log of a long history reads thousands of them, where four
 * thread-pool round trips each (open, stat, read, close) cost more than the reads. The same checks
 * as openRegular; LARGE when the file is over SMALL_FILE bytes, for the caller to read otherwise.
 */
function readSmall(file: string, max: number, tooLarge: (size: number) => Error): Buffer | undefined | typeof LARGE {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (e) {
    if (isMissing(e) || (e as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
    throw e;
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) return undefined;
    if (!st.isFile()) throw new CkptError('E_CORRUPT', `${file} is ${kindOfEntry(st)}, not a file`, { file });
    if (st.size > max) throw tooLarge(st.size);
    if (st.size > SMALL_FILE) return LARGE;
    const buf = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < st.size) {
      const n = readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return got === st.size ? buf : buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

/**
 * A whole file of at most `max` bytes (`tooLarge` says what else it is), undefined when missing.
 * Only the size seen at open is read: a file that grows meanwhile does not feed us forever.
 */
async function readBounded(file: string, max: number, tooLarge: (size: number) => Error): Promise<Buffer | undefined> {
  const small = readSmall(file, max, tooLarge);
  if (small !== LARGE) return small;
  const opened = await openRegular(file);
  if (!opened) return undefined;
  const { h, size } = opened;
  try {
    if (size > max) throw tooLarge(size);
    return await readAt(h, 0, size);
  } finally {
    await h.close();
  }
}

/** Resolves a path or file:// URL to the store directory it designates. */
export async function resolveStoreDir(location: string): Promise<string> {
  const dir = path.resolve(location.startsWith('file:') ? fileURLToPath(location) : location);
  const inner = path.join(dir, '.ckpt');
  const st = await fs.stat(inner).catch(() => undefined);
  return st?.isDirectory() ? inner : dir;
}

export async function openLocalBackend(
  location: string,
  options: LocalBackendOptions = {},
): Promise<LocalBackend> {
  return new LocalBackend(await resolveStoreDir(location), options);
}

export class LocalBackend implements Backend {
  readonly url: string;
  private readonly tmpDir: string;
  private readonly locksDir: string;

  constructor(
    readonly storeDir: string,
    private readonly options: LocalBackendOptions = {},
  ) {
    this.url = pathToFileURL(storeDir).href;
    this.tmpDir = path.join(storeDir, 'tmp');
    this.locksDir = path.join(storeDir, 'locks');
  }

  /** Keys are validated before this is called, so they hold no `..` and no separators but `/`. */
  private fileFor(key: string): string {
    return path.join(this.storeDir, ...key.split('/'));
  }

  private notFound(key: string): NotFoundError {
    return new NotFoundError(`${key} in ${this.url}`, { key, remote: this.url });
  }

  async list(prefix: string): Promise<KeyInfo[]> {
    listPrefix(prefix);
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const out: KeyInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(path.join(this.storeDir, ...rel.split('/').filter(Boolean)), { withFileTypes: true });
      } catch (e) {
        if (isMissing(e)) return;
        throw e;
      }
      for (const ent of entries) {
        // dot-files are partial downloads and the like; symlinks could point anywhere
        if (ent.name.startsWith('.') || ent.isSymbolicLink()) continue;
        const key = rel + ent.name;
        if (ent.isDirectory()) {
          if (key.startsWith(prefix) || prefix.startsWith(key + '/')) await walk(key + '/');
        } else if (ent.isFile() && key.startsWith(prefix) && isListableKey(key)) {
          // a blocking stat: thousands of loose files make a thread-pool round trip each the larger cost
          let st;
          try {
            st = statSync(path.join(this.storeDir, ...key.split('/')));
          } catch {
            st = undefined; // gone since the listing
          }
          if (st) out.push({ key, size: st.size, mtimeMs: st.mtimeMs });
        }
      }
    };
    await walk(base);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async stat(key: string): Promise<KeyInfo | undefined> {
    statableKey(key);
    try {
      const st = await fs.stat(this.fileFor(key));
      return st.isFile() ? { key, size: st.size, mtimeMs: st.mtimeMs } : undefined;
    } catch (e) {
      if (isMissing(e)) return undefined;
      throw e;
    }
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    readableKey(key);
    const file = this.fileFor(key);
    if (!range) {
      // a folder remote is another's store too: its objects are read only up to their kind's bound
      const max = maxResponseBytes(key);
      const bytes = await readBounded(file, max, () => new TooLargeError(`${this.url}: ${key}`, max));
      if (!bytes) throw this.notFound(key);
      verifyBytes(key, bytes, this.url);
      return bytes;
    }
    checkRange(range);
    const opened = await openRegular(file);
    if (!opened) throw this.notFound(key);
    try {
      return await this.readRange(key, opened.h, opened.size, range.offset, range.length);
    } finally {
      await opened.h.close();
    }
  }

  /** A range of an open file of `size` bytes; one that runs past the end is E_REMOTE. */
  private async readRange(key: string, h: fs.FileHandle, size: number, offset: number, length: number): Promise<Buffer> {
    const pastEnd = () => remoteError(this.url, `range ${offset}+${length} runs past the end of ${key}`, { key });
    if (offset + length > size) throw pastEnd();
    const buf = await readAt(h, offset, length);
    if (buf.byteLength !== length) throw pastEnd();
    return buf;
  }

  async getToFile(key: string, dest: string, opts: GetToFileOptions = {}): Promise<void> {
    readableKey(key);
    const file = this.fileFor(key);
    const opened = await openRegular(file);
    if (!opened) throw this.notFound(key);
    const { h, size } = opened;
    if (opts.size !== undefined && size !== opts.size) {
      await h.close();
      throw remoteError(this.url, `${key} has ${size} bytes, its index says ${opts.size}`, { key });
    }
    // read no further than the size seen: a file that grows meanwhile does not feed us forever
    const stream = h.createReadStream({ highWaterMark: 1 << 20, end: Math.max(0, size - 1), start: 0, autoClose: true });
    try {
      await streamToVerifiedFile(key, stream, dest, this.url, opts.onReceived);
    } finally {
      stream.destroy();
      await h.close().catch(() => undefined);
    }
  }

  async put(key: string, body: PutBody): Promise<void> {
    objectKey(key);
    if ('bytes' in body) {
      verifyBytes(key, body.bytes, 'upload');
      if (await this.stat(key)) return;
      await writeFileAtomic(this.fileFor(key), body.bytes, this.tmpDir);
      return;
    }
    // an existing object was verified when it was written and is never rewritten
    if (await this.stat(key)) return;
    if (body.writtenAs !== undefined && body.writtenAs === parseKey(key)?.name && path.dirname(body.file) === this.tmpDir) {
      // our own writer hashed every byte it wrote into our tmp/: moving it into place is enough
      await renameIntoPlace(body.file, this.fileFor(key));
      return;
    }
    await this.putStream(key, createReadStream(body.file, { highWaterMark: 1 << 20 }));
  }

  /**
   * Streams bytes into tmp/ while verifying them against the key, then renames them into place.
   * Nothing appears under the key unless every byte matched. Resolves to whether the object
   * was new. The HTTP server feeds request bodies through here.
   */
  async putStream(key: string, source: AsyncIterable<Uint8Array>): Promise<'created' | 'exists'> {
    objectKey(key);
    await fs.mkdir(this.tmpDir, { recursive: true });
    const tmp = tmpName(this.tmpDir, key.slice(key.lastIndexOf('/') + 1));
    const v = keyVerifier(key);
    const h = await fs.open(tmp, 'w');
    try {
      for await (const chunk of source) {
        v.update(chunk);
        await writeAll(h, chunk);
      }
    } catch (e) {
      await h.close().catch(() => undefined);
      await fs.rm(tmp, { force: true });
      throw e;
    }
    return this.land(key, tmp, h, v);
  }

  /**
   * The end of an upload written to `file` through `h`: checked against the key, made durable and
   * renamed into place, unless the object arrived meanwhile. A file that fails the check is deleted.
   */
  private async land(key: string, file: string, h: fs.FileHandle, v: ReturnType<typeof keyVerifier>): Promise<'created' | 'exists'> {
    try {
      v.finish('upload');
      await h.sync();
      await h.close();
    } catch (e) {
      await h.close().catch(() => undefined);
      await fs.rm(file, { force: true });
      throw e;
    }
    if (await this.stat(key)) {
      await fs.rm(file, { force: true });
      return 'exists';
    }
    await renameIntoPlace(file, this.fileFor(key));
    return 'created';
  }

  /** Where an interrupted upload of `key` is kept: one name per key, so a resumed upload finds it. */
  private partialFile(key: string): string {
    return path.join(this.tmpDir, `${key.slice(key.lastIndexOf('/') + 1)}.upload`);
  }

  /** Bytes kept of an interrupted upload of `key` (putResumable), 0 when none. */
  async partialSize(key: string): Promise<number> {
    objectKey(key);
    return (await fs.stat(this.partialFile(key)).catch(() => undefined))?.size ?? 0;
  }

  /**
   * putStream for large objects arriving over a network (`ckpt serve`): the bytes go to
   * tmp/<name>.upload, which is kept when the source fails midway (a connection cut, a client
   * killed), so the next upload of the same key can start at `offset` instead of at 0. The kept
   * bytes up to `offset` are hashed again from disk, so the object is still verified whole. An
   * `offset` beyond what is kept is an E_REMOTE error carrying the kept size (`uploadKept`); a second
   * upload of the key while one runs goes through a file of its own (putStream), or is refused
   * the same way when it asks to resume. Bytes that do not match the key are deleted.
   */
  async putResumable(key: string, source: AsyncIterable<Uint8Array>, offset = 0): Promise<'created' | 'exists'> {
    objectKey(key);
    if (await this.stat(key)) return 'exists';
    const part = this.partialFile(key);
    if (activeUploads.has(part)) {
      // another client sends the same pack meanwhile (two pushes of one commit build the same
      // packs): this one goes through a file of its own, as before, and is not resumable
      if (offset === 0) return this.putStream(key, source);
      throw new CkptError('E_REMOTE', `${key} is being uploaded by another request: send it whole`, { key, uploadKept: 0 });
    }
    activeUploads.add(part);
    try {
      await fs.mkdir(this.tmpDir, { recursive: true });
      const v = keyVerifier(key);
      let h: fs.FileHandle;
      if (offset > 0) {
        const kept = (await fs.stat(part).catch(() => undefined))?.size ?? 0;
        if (kept < offset) throw new CkptError('E_REMOTE', `${key}: ${kept} bytes kept of an earlier upload, not ${offset}`, { key, uploadKept: kept });
        h = await fs.open(part, 'r+');
        try {
          await h.truncate(offset);
          const buf = Buffer.allocUnsafe(Math.min(offset, 8 << 20));
          for (let pos = 0; pos < offset; ) {
            const { bytesRead } = await h.read(buf, 0, Math.min(buf.byteLength, offset - pos), pos);
            if (bytesRead === 0) throw new CkptError('E_IO', `${part} shrank`, { key });
            v.update(buf.subarray(0, bytesRead));
            pos += bytesRead;
          }
        } catch (e) {
          await h.close().catch(() => undefined);
          throw e;
        }
      } else h = await fs.open(part, 'w');
      let pos = offset;
      try {
        for await (const chunk of source) {
          v.update(chunk);
          // positioned writes: a file opened to resume is at position 0, its kept bytes before `pos`
          let done = 0;
          while (done < chunk.byteLength) {
            const { bytesWritten } = await h.write(chunk, done, chunk.byteLength - done, pos + done);
            done += bytesWritten;
          }
          pos += chunk.byteLength;
        }
      } catch (e) {
        // what arrived is kept for the next attempt (unless the body was refused as too large)
        await h.close().catch(() => undefined);
        if (e instanceof TooLargeError) await fs.rm(part, { force: true });
        throw e;
      }
      return await this.land(key, part, h, v);
    } finally {
      activeUploads.delete(part);
    }
  }

  async delete(key: string): Promise<void> {
    deletableKey(key);
    const file = this.fileFor(key);
    try {
      await fs.rm(file);
    } catch (e) {
      if (isMissing(e)) return;
      throw e;
    }
    await fsyncDir(path.dirname(file));
  }

  async readRef(ref: string): Promise<string | null> {
    refName(ref);
    const file = this.fileFor(ref);
    // a folder where the ref would be holds refs below it (`fd/sub`): this ref does not exist;
    // an empty one stands where the ref's file should be, which is damage
    if ((await fs.lstat(file).catch(() => undefined))?.isDirectory()) {
      if ((await fs.readdir(file)).length > 0) return null;
      throw new CkptError('E_CORRUPT', `${file} is a folder, not a file`, { file, ref });
    }
    const bytes = await readBounded(file, REF_OBJECT_MAX, (size) => new CorruptObjectError(ref, this.url, `a ref must hold one commit id, not ${size} bytes`));
    return bytes === undefined ? null : decodeRef(ref, bytes);
  }

  /**
   * The lock file of a ref: `locks/refs%heads%main.lock` ('/' as '%'), the file every writer of
   * this store takes, a local commit as much as a push (docs/format.md, locks).
   */
  refLockFile(ref: string): string {
    return path.join(this.locksDir, `${ref.replaceAll('/', '%')}.lock`);
  }

  /**
   * The store's shared lock (storeLocks.ts), the same file a local commit takes: gc on this
   * folder, from any process, waits for it and then sees what was written under it.
   */
  lockShared(purpose: string): Promise<Lock> {
    return acquireShared(this.locksDir, purpose, { timeoutMs: this.options.lockWaitMs });
  }

  /** The store's exclusive lock (gc, prune): gc.lock, then no live shared lock. */
  lockExclusive(purpose: string): Promise<Lock> {
    return acquireExclusive(this.locksDir, { timeoutMs: this.options.lockWaitMs, purpose });
  }

  async readFile(key: string): Promise<Uint8Array | undefined> {
    storeFileKey(key);
    const max = maxStoreFileBytes(key);
    const file = this.fileFor(key);
    // config, HEAD, a reflog or a mark that is a folder stands where a file must be: damage
    const st = await fs.lstat(file).catch(() => undefined);
    if (st?.isDirectory()) throw new CkptError('E_CORRUPT', `${file} is a folder, not a file`, { file });
    return readBounded(file, max, () => new TooLargeError(`${this.url}: ${key}`, max));
  }

  async writeFile(key: string, bytes: Uint8Array): Promise<void> {
    writableStoreFileKey(key);
    await writeFileAtomic(this.fileFor(key), bytes, this.tmpDir);
  }

  /** Ranged reads of one file through one open handle (checkout reads a pack chunk by chunk). */
  async openRanges(key: string): Promise<RangeReader> {
    readableKey(key);
    const opened = await openRegular(this.fileFor(key));
    if (!opened) throw this.notFound(key);
    const { h, size } = opened;
    return {
      read: async (offset, length) => {
        checkRange({ offset, length });
        return this.readRange(key, h, size, offset, length);
      },
      close: () => h.close(),
    };
  }

  /** A ref cannot be a file where another ref needs a folder, or the reverse (`fd` and `fd/sub`). */
  private async assertNoFolderConflict(ref: string): Promise<void> {
    const parts = ref.split('/');
    for (let i = 2; i < parts.length; i++) {
      const other = parts.slice(0, i).join('/');
      const st = await fs.lstat(this.fileFor(other)).catch(() => undefined);
      if (st && !st.isDirectory()) throw new CkptError('E_REF_CONFLICT', `ref ${ref} cannot exist beside ref ${other}`, { ref, other });
    }
    const st = await fs.lstat(this.fileFor(ref)).catch(() => undefined);
    if (st?.isDirectory()) throw new CkptError('E_REF_CONFLICT', `ref ${ref} cannot exist: refs under ${ref}/ exist`, { ref });
  }

  async casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void> {
    refName(ref);
    const data = next === null ? undefined : encodeRef(next);
    if (expected !== null) encodeRef(expected);
    await withLock(
      this.refLockFile(ref),
      async () => {
        if (data) await this.assertNoFolderConflict(ref);
        const current = await this.readRef(ref);
        if (current !== expected) throw refConflict(ref, expected, current);
        const file = this.fileFor(ref);
        if (data) {
          await writeFileAtomic(file, data, this.tmpDir);
        } else if (current !== null) {
          await fs.rm(file, { force: true });
          await fsyncDir(path.dirname(file));
        }
        if (log && (current !== null || next !== null)) {
          const logFile = this.fileFor(logKey(ref));
          await fs.mkdir(path.dirname(logFile), { recursive: true });
          await fs.appendFile(logFile, reflogLine(current, next, log));
        }
      },
      this.options.lockTimeoutMs,
    );
  }
}
