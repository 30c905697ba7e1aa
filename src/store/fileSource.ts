/** A ByteSource over a file on disk, read with positioned reads. */
import { promises as fs } from 'node:fs';
import type { ByteSource } from '../core/byteSource.js';

export interface FileSource extends ByteSource {
  close(): Promise<void>;
}

export async function openFileSource(file: string): Promise<FileSource> {
  const fh = await fs.open(file, 'r');
  const size = (await fh.stat()).size;
  return {
    size,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > size) throw new RangeError(`read ${offset}+${length} past end ${size}`);
      const buf = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new RangeError(`file shrank while reading at ${offset + done}`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => fh.close(),
  };
}
