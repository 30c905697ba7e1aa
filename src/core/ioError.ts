/**
 * Failures of the file system (permission denied, a file where a folder should be, a full disk)
 * as typed E_IO errors naming the path, so the CLI reports them in one line with exit 8 instead
 * of an internal error with a stack trace.
 */
import { CkptError } from './errors.js';

const WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a folder on its path is a file',
  EISDIR: 'is a folder, not a file',
  EEXIST: 'already exists',
  ENOENT: 'does not exist',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many levels of symbolic links',
  EBUSY: 'busy',
  EIO: 'input/output error',
  ENOTEMPTY: 'folder not empty',
  EXDEV: 'crosses file systems',
};

/** True for an error thrown by Node's fs (it has an errno code and a syscall). */
export function isFsError(e: unknown): e is NodeJS.ErrnoException {
  const x = e as NodeJS.ErrnoException | undefined;
  return typeof x === 'object' && x !== null && typeof x.code === 'string' && typeof x.syscall === 'string' && !(e instanceof CkptError);
}

/** `e` as a CkptError: fs errors become E_IO naming `where` (or the path Node reports); others pass. */
export function ioError(e: unknown, where?: string): unknown {
  if (!isFsError(e)) return e;
  const file = where ?? e.path ?? (e as { dest?: string }).dest;
  const what = WORDS[e.code as string] ?? (e.code as string);
  return new CkptError('E_IO', `${file ?? e.syscall}: ${what} (${e.code} in ${e.syscall})`, { file, errno: e.code, syscall: e.syscall });
}
