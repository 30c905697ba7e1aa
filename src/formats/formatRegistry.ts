/**
 * Every known format, in detection order. The format comes from the bytes (magic numbers),
 * never from the file name; `--format` names one explicitly.
 */
import type { ByteSource } from '../core/byteSource.js';
import { UsageError } from '../core/errors.js';
import type { Layout } from '../core/layout.js';
import { assertLayoutCovers } from '../core/layout.js';
import type { CheckpointFormat, ParseOptions } from './checkpointFormat.js';
import { gguf } from './gguf.js';
import { npy } from './npy.js';
import { npz } from './npz.js';
import { opaque } from './opaque.js';
import { pytorch } from './pytorch.js';
import { pytorchLegacy } from './pytorchLegacy.js';
import { safetensors } from './safetensors.js';

const formats: CheckpointFormat[] = [safetensors, gguf, npy, npz, pytorch, pytorchLegacy, opaque];

export function formatNames(): string[] {
  return formats.map((f) => f.name);
}

export async function detectFormat(src: ByteSource): Promise<CheckpointFormat> {
  const head = await src.read(0, Math.min(64, src.size));
  for (const f of formats) if (f.detect(head, src.size)) return f;
  return opaque;
}

export function formatByName(name: string): CheckpointFormat {
  const f = formats.find((x) => x.name === name);
  if (!f) throw new UsageError(`unknown format ${name}; known: ${formatNames().join(', ')}`);
  return f;
}

/** Parses with the named format, or the detected one; checks the layout covers the file. */
export async function parseCheckpoint(src: ByteSource, format?: string, options?: ParseOptions): Promise<Layout> {
  const f = format ? formatByName(format) : await detectFormat(src);
  const layout = await f.parse(src, options);
  assertLayoutCovers(layout);
  return layout;
}
