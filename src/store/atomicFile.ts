/**
 * Crash-safe file writes (invariant 2 of docs/architecture.md): write into tmp/, fsync, rename into place, fsync
 * the directory. A reader sees the old file or the new one, never a torn one.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

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
  await fs.mkdir(path.dirname(dest), { recursive: true });
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

export async function readFileOrUndefined(p: string): Promise<Buffer | undefined> {
  try {
    return await fs.readFile(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}
