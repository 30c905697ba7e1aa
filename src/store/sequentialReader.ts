/**
 * Reads a file front to back in large blocks with one block read ahead, handing out byte runs of
 * any length. Every block passes through `onBlock` once (the whole-file hash).
 */
import type { FileHandle } from 'node:fs/promises';
import { CkptError } from '../core/errors.js';

const BLOCK = 8 * 1024 * 1024;

export class SequentialReader {
  private buf: Uint8Array = new Uint8Array(0);
  private pos = 0;
  private fileOffset = 0;
  private ahead: Promise<Uint8Array> | undefined;

  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
    private readonly onBlock: (b: Uint8Array) => void,
    /** The file's name, for errors. */
    private readonly name = 'file',
  ) {}

  private shrank(at: number): CkptError {
    return new CkptError('E_IO', `${this.name} shrank while it was read (${this.size} bytes when it was opened, ended at ${at}); nothing was stored`, {
      file: this.name,
    });
  }

  private readBlock(offset: number): Promise<Uint8Array> {
    const n = Math.min(BLOCK, this.size - offset);
    const p = (async () => {
      const b = Buffer.allocUnsafe(n);
      let done = 0;
      while (done < n) {
        const { bytesRead } = await this.fh.read(b, done, n - done, offset + done);
        if (bytesRead === 0) throw this.shrank(offset + done);
        done += bytesRead;
      }
      return b;
    })();
    p.catch(() => undefined);
    return p;
  }

  private async nextBlock(): Promise<Uint8Array> {
    const p = this.ahead ?? this.readBlock(this.fileOffset);
    const b = await p;
    this.fileOffset += b.length;
    this.ahead = this.fileOffset < this.size ? this.readBlock(this.fileOffset) : undefined;
    this.onBlock(b);
    return b;
  }

  /** Up to `n` next bytes without consuming them (fewer only at the end of the file). */
  async peek(n: number): Promise<Uint8Array> {
    while (this.buf.length - this.pos < n && this.fileOffset < this.size) {
      const b = await this.nextBlock();
      const rest = this.buf.subarray(this.pos);
      if (rest.length === 0) this.buf = b;
      else {
        const joined = new Uint8Array(rest.length + b.length);
        joined.set(rest, 0);
        joined.set(b, rest.length);
        this.buf = joined;
      }
      this.pos = 0;
    }
    return this.buf.subarray(this.pos, Math.min(this.buf.length, this.pos + n));
  }

  /**
   * Exactly the next `n` bytes. A run that crosses a block boundary is assembled by copying just
   * its own bytes, so tensor chunks never cause a whole block to be copied.
   */
  async take(n: number): Promise<Uint8Array> {
    const have = this.buf.length - this.pos;
    if (have >= n) {
      const out = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      return out;
    }
    const out = new Uint8Array(n);
    out.set(this.buf.subarray(this.pos), 0);
    let filled = have;
    while (filled < n) {
      if (this.fileOffset >= this.size) throw this.shrank(this.fileOffset);
      const b = await this.nextBlock();
      const part = Math.min(b.length, n - filled);
      out.set(b.subarray(0, part), filled);
      filled += part;
      this.buf = b;
      this.pos = part;
    }
    return out;
  }

  skip(n: number): void {
    this.pos += n;
  }
}
