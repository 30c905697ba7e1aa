/**
 * `ckpt export REV [PATH] --format safetensors -o OUT`: one stored file written as safetensors,
 * whatever format it was committed in. A PyTorch pickle becomes a file that loads without running
 * anything: its tensors (views resolved to contiguous bytes, tied weights written once per name)
 * byte for byte, and its non-tensor values as JSON in the `ckpt.values` metadata entry.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createHasher } from '../core/blake3.js';
import { CkptError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { encodeSafetensorsHeader } from '../formats/safetensors.js';
import type { Repository } from '../repo/repository.js';
import { resolveRevision } from '../repo/resolveRevision.js';
import { renameIntoPlace } from '../backend/atomicFile.js';
import { metadataOf } from './outputFormat.js';
import { logicalTensors, tensorBytes } from './tensorSource.js';

export interface ExportResult {
  commit: ObjectId;
  path: string;
  output: string;
  size: number;
  hash: string;
  tensors: number;
}

export async function exportSafetensors(repo: Repository, rev: string, file: string | undefined, output: string, format = 'safetensors'): Promise<ExportResult> {
  if (format !== 'safetensors') throw new UsageError(`--format: ckpt export writes safetensors, not ${format}`);
  const commit = await resolveRevision(repo, rev);
  const tree = await repo.readTree((await repo.readCommit(commit)).tree);
  let p: string;
  if (file !== undefined) {
    const want = repo.treePath(file);
    p = tree.files[want] ? want : file;
    if (!tree.files[p]) throw new CkptError('E_NOT_FOUND', `${file} is not in ${rev}`, { path: file });
  } else {
    const withTensors: string[] = [];
    for (const [k, e] of Object.entries(tree.files)) if ((await repo.readManifest(e.manifest)).segments.some((s) => s.t === 'tensor')) withTensors.push(k);
    if (withTensors.length !== 1) {
      throw new UsageError(`${rev} holds ${withTensors.length} files with tensors${withTensors.length ? ` (${withTensors.sort().join(', ')})` : ''}: name one`);
    }
    p = withTensors[0];
  }
  const m = await repo.readManifest(tree.files[p].manifest);
  const list = logicalTensors(m, p);
  if (list.length === 0) throw new UsageError(`${p} in ${rev} holds no tensors to export`);
  const header = encodeSafetensorsHeader(list.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, length: t.len })), metadataOf(m));
  const lock = await repo.store.lockShared('export');
  const reader = await repo.store.reader(await repo.store.reloadIndex());
  const tmp = await repo.store.scratchFile('export');
  const dest = path.resolve(output);
  const hasher = createHasher();
  let size = 0;
  try {
    const fh = await fs.open(tmp, 'w');
    try {
      const write = async (b: Uint8Array) => {
        hasher.update(b);
        size += b.length;
        for (let done = 0; done < b.length; ) done += (await fh.write(b, done, b.length - done)).bytesWritten;
      };
      await write(header);
      for (const t of list) for await (const b of tensorBytes(reader, t)) await write(b);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await renameIntoPlace(tmp, dest);
  } catch (e) {
    await fs.rm(tmp, { force: true });
    throw e;
  } finally {
    await reader.close();
    await lock.release();
  }
  return { commit, path: p, output: dest, size, hash: hasher.hex(), tensors: list.length };
}
