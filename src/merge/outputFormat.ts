/**
 * What a merge result is written as: the formats whose framing can carry merged tensor bytes as
 * they are (no checksum over the data, tensor sizes unchanged), and for every other format the
 * safetensors file it becomes, named and given the first model's non-tensor values.
 */
import * as path from 'node:path';
import type { Manifest } from '../core/objects.js';

/** Formats a merged file keeps: the first model's framing with the tensor bytes replaced. */
export const SAME_FRAMING_FORMATS = new Set(['safetensors', 'npy', 'gguf']);

/** Two shapes are equal. */
export const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

/** The output path of a file converted to safetensors. */
export function safetensorsPath(p: string): string {
  const ext = path.posix.extname(p);
  if (ext === '.safetensors') return p;
  return `${['.pt', '.pth', '.bin', '.ckpt', '.npz', '.npy', '.gguf'].includes(ext) ? p.slice(0, -ext.length) : p}.safetensors`;
}

/** safetensors metadata carrying the non-tensor parts of the first model's file. */
export function metadataOf(m: Manifest): Record<string, string> | undefined {
  const meta = m.info?.metadata;
  if (m.format === 'safetensors' && meta && typeof meta === 'object') return meta as Record<string, string>;
  if (m.info?.values !== undefined) return { 'ckpt.values': JSON.stringify(m.info.values) };
  return undefined;
}

