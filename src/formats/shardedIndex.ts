/**
 * The index of a sharded checkpoint (`model.safetensors.index.json`, `pytorch_model.bin.index.json`):
 * which shard holds each tensor. The file itself is stored verbatim like any other; this only
 * reads it so `ckpt show` can name each tensor's shard.
 */
import { FormatError } from '../core/errors.js';

const FORMAT = 'shard-index';

export interface ShardIndex {
  /** Tensor name -> shard file name, relative to the index's folder. */
  weightMap: Record<string, string>;
  /** The index's `metadata` (usually `total_size`), or {} when absent. */
  metadata: Record<string, unknown>;
}

/** True for the index names transformers and diffusers write: `<prefix>.<safetensors|bin>.index.json`. */
export function isShardIndexName(name: string): boolean {
  const base = name.slice(name.lastIndexOf('/') + 1);
  return /^.+\.(safetensors|bin|pt|pth)\.index\.json$/.test(base);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseShardIndex(bytes: Uint8Array, fileName: string): ShardIndex {
  const fail = (offset: number, fault: string): never => {
    throw new FormatError(FORMAT, Math.max(0, Math.min(offset, bytes.length - 1)), fault).inFile(fileName);
  };
  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    fail(0, 'not valid UTF-8');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    // V8 reports "... at position N" (a UTF-16 index); turn it into the byte offset it names.
    const m = /position (\d+)/.exec((e as Error).message);
    const at = m ? new TextEncoder().encode(text.slice(0, Number(m[1]))).length : 0;
    fail(at, `not valid JSON: ${(e as Error).message}`);
  }
  if (!isPlainObject(doc)) fail(0, 'the index is not a JSON object');
  const index = doc as Record<string, unknown>;
  const map = index.weight_map;
  if (!isPlainObject(map)) fail(0, map === undefined ? 'no weight_map' : 'weight_map is not an object');
  const weightMap: Array<[string, string]> = [];
  for (const [tensor, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string') fail(0, `weight_map entry ${JSON.stringify(tensor)} is not a file name`);
    // Shards sit beside the index; a name that climbs out of the folder is not one of them.
    const s = shard as string;
    if (s === '' || s.startsWith('/') || s.includes('\\') || s.split('/').includes('..')) {
      fail(0, `weight_map entry ${JSON.stringify(tensor)} names ${JSON.stringify(s)}, outside the index's folder`);
    }
    weightMap.push([tensor, s]);
  }
  const metadata = index.metadata;
  if (metadata !== undefined && metadata !== null && !isPlainObject(metadata)) fail(0, 'metadata is not an object');
  return {
    // fromEntries defines own properties, so a tensor named "__proto__" stays an entry.
    weightMap: Object.fromEntries(weightMap),
    metadata: isPlainObject(metadata) ? metadata : {},
  };
}
