/**
 * Crash-safe file writes (invariant 2 of docs/architecture.md): write into tmp/, fsync, rename into place, fsync
 * the directory. A reader sees the old file or the new one, never a torn one.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs, type Stats } from 'node:fs';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';
import { ioError } from '../core/ioError.js';

export function tmpName(tmpDir: string, hint: string): string {
  return path.join(tmpDir, `${hint}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const h = await fs.open(dir, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/**
 * Writes `data` to `dest` through a temporary file in `tmpDir` (same filesystem as `dest`).
 * `mode` is given when the file is created (0o600 for credentials), never chmodded after.
 */
export async function writeFileAtomic(dest: string, data: Uint8Array | string, tmpDir: string, mode?: number): Promise<void> {
  await fs.mkdir(tmpDir, { recursive: true });
  const tmp = tmpName(tmpDir, path.basename(dest));
  const h = await fs.open(tmp, 'wx', mode ?? 0o666);
  try {
    await h.writeFile(data);
    await h.sync();
  } catch (e) {
    await h.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await h.close();
  await renameIntoPlace(tmp, dest);
}

/** Moves a finished, fsynced temporary file into place and makes the rename durable. */
export async function renameIntoPlace(tmp: string, dest: string): Promise<void> {
  try {
    await fs.mkdir(path.dirname(dest), { recursive: true });
  } catch (e) {
    await fs.rm(tmp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      throw new CkptError('E_IO', `cannot write ${dest}: a file is in the way where a folder on its path should be`, { file: dest });
    }
    throw ioError(e, dest);
  }
  try {
    await fs.rename(tmp, dest);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EXDEV') {
      await fs.rm(tmp, { force: true });
      throw e;
    }
    await copyIntoPlace(tmp, dest);
  }
  await fsyncDir(path.dirname(dest));
}

/**
 * `dest` is on another filesystem than tmp/ (a checkout to another disk): copy beside it first,
 * so the final step is still a rename and a reader never sees a partial file.
 */
async function copyIntoPlace(tmp: string, dest: string): Promise<void> {
  const near = tmpName(path.dirname(dest), `.${path.basename(dest)}`);
  try {
    await fs.copyFile(tmp, near);
    const h = await fs.open(near, 'r+');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
    await fs.rename(near, dest);
  } catch (e) {
    await fs.rm(near, { force: true });
    throw e;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** What a path is, in words, for an error about a store file of the wrong type. */
export function kindOfEntry(st: Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Opens a file of the store for reading, or undefined when it does not exist. Anything that is not
 * a regular file (a folder, a pipe that would block a read forever, a device) is store damage:
 * E_CORRUPT naming it. Other failures are E_IO naming it. The open never blocks (O_NONBLOCK, which
 * regular files ignore).
 */
export async function openStoreFile(p: string): Promise<fs.FileHandle | undefined> {
  let h: fs.FileHandle;
  try {
    h = await fs.open(p, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ENOTDIR: a file where a folder of the path would be (refs/heads/a when reading a/b): no
    // such file; a store folder that is a file is reported when the store is opened
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw ioError(e, p);
  }
  try {
    const st = await h.stat();
    if (!st.isFile()) throw new CkptError('E_CORRUPT', `${p} is ${kindOfEntry(st)}, not a file`, { file: p });
    return h;
  } catch (e) {
    await h.close();
    throw ioError(e, p);
  }
}

/** A store file's bytes, or undefined when it does not exist; see openStoreFile. */
export async function readFileOrUndefined(p: string): Promise<Buffer | undefined> {
  const h = await openStoreFile(p);
  if (!h) return undefined;
  try {
    return await h.readFile();
  } catch (e) {
    throw ioError(e, p);
  } finally {
    await h.close();
  }
}
