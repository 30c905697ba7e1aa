/** `ckpt show`: a commit's metadata, files and tensors. */
import type { ObjectId } from '../core/objectId.js';
import type { Commit, Manifest } from '../core/objects.js';
import { parseShardIndex, isShardIndexName } from '../formats/shardedIndex.js';
import type { Repository } from './repository.js';
import { resolveRevision } from './resolveRevision.js';

export interface ShownTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: number;
  /** Plain BLAKE3 of the tensor's bytes. */
  hash: string;
  chunks: number;
  file: string;
}

export interface ShownFile {
  path: string;
  format: string;
  size: number;
  hash: string;
  manifest: ObjectId;
  tensors: ShownTensor[];
  views?: Manifest['tensors'];
  info?: Record<string, unknown>;
  warnings?: string[];
}

export interface ShowResult {
  id: ObjectId;
  commit: Commit;
  files: ShownFile[];
  /** Tensor -> shard file, from a sharded model's index JSON. */
  shards?: Record<string, string>;
}

export async function showCommit(repo: Repository, rev: string): Promise<ShowResult> {
  const id = await resolveRevision(repo, rev);
  const commit = await repo.readCommit(id);
  const tree = await repo.readTree(commit.tree);
  const files: ShownFile[] = [];
  let shards: Record<string, string> | undefined;
  // the chunk index loads only for a sharded model's index file, whose bytes are read
  let reader: Awaited<ReturnType<Repository['store']['reader']>> | undefined;
  try {
    for (const p of Object.keys(tree.files).sort()) {
      const e = tree.files[p];
      const m = await repo.readManifest(e.manifest);
      const tensors = m.segments.flatMap((s) =>
        s.t === 'tensor' ? [{ name: s.name, dtype: s.dtype, shape: s.shape, bytes: s.len, hash: s.hash, chunks: s.chunks.length, file: p }] : [],
      );
      files.push({
        path: p,
        format: m.format,
        size: m.size,
        hash: m.hash,
        manifest: e.manifest,
        tensors,
        ...(m.tensors ? { views: m.tensors } : {}),
        ...(m.info ? { info: m.info } : {}),
        ...(m.warnings ? { warnings: m.warnings } : {}),
      });
      if (isShardIndexName(p.split('/').pop()!) && m.size < 64 * 1024 * 1024) {
        const parts: Uint8Array[] = [];
        reader ??= await repo.store.reader();
        for await (const c of reader.stream(m.segments.flatMap((s) => s.chunks.map((x) => x[0])))) parts.push(c);
        const dir = p.includes('/') ? p.slice(0, p.lastIndexOf('/') + 1) : '';
        const { weightMap } = parseShardIndex(Buffer.concat(parts), p);
        shards = { ...(shards ?? {}), ...Object.fromEntries(Object.entries(weightMap).map(([t, f]) => [t, dir + f])) };
      }
    }
  } finally {
    await reader?.close();
  }
  return { id, commit, files, ...(shards ? { shards } : {}) };
}
