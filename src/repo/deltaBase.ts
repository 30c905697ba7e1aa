/**
 * Which stored chunk a new chunk may be delta-coded against: the chunk at the same position of
 * the same tensor (same name, dtype and shape) in the parent commit's matching file. A file
 * matches by path, or when both commits hold a single file (step_1000.pt then step_2000.pt).
 */
import type { ObjectId } from '../core/objectId.js';
import type { Tree } from '../core/objects.js';
import type { Repository } from './repository.js';

export type DeltaBaseFinder = (tensor: string, dtype: string, shape: number[], chunkIndex: number) => ObjectId | undefined;

export async function deltaBaseFinder(repo: Repository, parent: Tree, treePath: string, fileCount: number): Promise<DeltaBaseFinder | undefined> {
  const paths = Object.keys(parent.files);
  const match = parent.files[treePath] ?? (paths.length === 1 && fileCount === 1 ? parent.files[paths[0]] : undefined);
  if (!match) return undefined;
  const manifest = await repo.readManifest(match.manifest);
  const byName = new Map<string, { key: string; chunks: ObjectId[] }>();
  for (const s of manifest.segments) {
    if (s.t === 'tensor') byName.set(s.name, { key: `${s.dtype}|${s.shape.join(',')}`, chunks: s.chunks.map((c) => c[0]) });
  }
  return (tensor, dtype, shape, i) => {
    const t = byName.get(tensor);
    return t && t.key === `${dtype}|${shape.join(',')}` ? t.chunks[i] : undefined;
  };
}
