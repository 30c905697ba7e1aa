/** A ByteSource over a file on disk, read with positioned reads. */
import { promises as fs } from 'node:fs';
import type { ByteSource } from '../core/byteSource.js';
import { CkptError } from '../core/errors.js';

export interface FileSource extends ByteSource {
  close(): Promise<void>;
}

/**
 * Opens `file` to be read by position. A file whose size stat cannot tell (a pipe, a device, or a
 * /proc file that says 0 bytes but has content) is refused: its bytes could not be read twice
 * the same, and storing 0 bytes for it would be silently wrong.
 */
export async function openFileSource(file: string): Promise<FileSource> {
  const fh = await fs.open(file, 'r');
  let size: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new CkptError('E_IO', `${file} is not a regular file; copy it to one to store it`, { file });
    size = st.size;
    if (size === 0 && (await fh.read(Buffer.alloc(1), 0, 1, 0)).bytesRead > 0) {
      throw new CkptError('E_IO', `${file} says it is 0 bytes but has content (a /proc or similar file); copy it to a regular file to store it`, { file });
    }
  } catch (e) {
    await fh.close();
    throw e;
  }
  const shrank = (at: number) =>
    new CkptError('E_IO', `${file} shrank while it was read (${size} bytes when it was opened, ended at ${at}); nothing was stored`, { file });
  return {
    size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) throw new RangeError(`read ${offset}+${length} past end ${size} of ${file}`);
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw shrank(offset + done);
        done += bytesRead;
      }
      return buf;
    },
    close: () => fh.close(),
  };
}
