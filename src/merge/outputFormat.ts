/**
 * What a merge result is written as: the formats whose framing can carry merged tensor bytes as
 * they are (no checksum over the data, tensor sizes unchanged), and for every other format the
 * safetensors file it becomes, named and given the first model's non-tensor values.
 */
import * as path from 'node:path';
import { UsageError } from '../core/errors.js';
import type { Manifest } from '../core/objects.js';
import type { Repository } from '../repo/repository.js';
import { ChunkReader } from '../store/chunkReader.js';

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

/**
 * The merged commit's paths must be a valid tree: a file converted to safetensors (`model.pt` ->
 * `model.safetensors`) may not land on another file of the commit, nor on a folder of it.
 */
export function assertDistinctPaths(paths: string[]): void {
  const seen = new Set<string>();
  for (const p of paths) {
    if (seen.has(p)) throw new UsageError(`two merged files would be stored as ${p}; rename one, or merge them one at a time with --tensors`, { path: p });
    seen.add(p);
  }
  for (const p of paths) {
    const folder = paths.find((q) => q.startsWith(`${p}/`));
    if (folder) throw new UsageError(`merged file ${p} would stand where ${folder} needs a folder`, { path: p });
  }
}

/** A chunk reader over the store's index, opened while `lock` is held (released if opening fails). */
export async function openReader(repo: Repository, lock: { release(): Promise<void> }): Promise<ChunkReader> {
  try {
    return await repo.store.reader(await repo.store.reloadIndex());
  } catch (e) {
    await lock.release();
    throw e;
  }
}

/** safetensors metadata carrying the non-tensor parts of the first model's file. */
export function metadataOf(m: Manifest): Record<string, string> | undefined {
  const meta = m.info?.metadata;
  if (m.format === 'safetensors' && meta && typeof meta === 'object') return meta as Record<string, string>;
  if (m.info?.values !== undefined) return { 'ckpt.values': JSON.stringify(m.info.values) };
  return undefined;
}

