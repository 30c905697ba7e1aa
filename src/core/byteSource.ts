/**
 * Random-access bytes. Parsers read headers through this, never the whole file, so memory stays
 * bounded by what a header needs.
 */
export interface ByteSource {
  readonly size: number;
  /** Exactly `length` bytes at `offset`; throws if that runs past the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function bufferSource(buf: Uint8Array): ByteSource {
  return {
    size: buf.byteLength,
    async read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > buf.byteLength) {
        throw new RangeError(`read ${offset}+${length} past end ${buf.byteLength}`);
      }
      return buf.subarray(offset, offset + length);
    },
  };
}
