/**
 * The contract of a format parser: recognise a file by its first bytes, and turn it into a
 * Layout by reading only what it needs through a ByteSource. Parsers never evaluate content and
 * throw FormatError (with the offset of the fault) on anything malformed.
 */
import type { ByteSource } from '../core/byteSource.js';
import type { Layout } from '../core/layout.js';

export interface ParseOptions {
  /** Store a PyTorch pickle even though it names globals that would run code on load. */
  allowUnsafePickle?: boolean;
}

export interface CheckpointFormat {
  name: string;
  /** True when these leading bytes (up to 64, fewer for short files) look like this format. */
  detect(head: Uint8Array, size: number): boolean;
  parse(src: ByteSource, options?: ParseOptions): Promise<Layout>;
}
