/** `ckpt status`: do the work tree's files match HEAD's? */
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { createHasher } from '../core/blake3.js';
import type { ObjectId } from '../core/objectId.js';
import type { Repository } from './repository.js';

export type FileState = 'unchanged' | 'modified' | 'missing';

export interface StatusResult {
  branch: string | undefined;
  head: ObjectId | null;
  files: { path: string; state: FileState }[];
}

export async function hashFile(file: string): Promise<string> {
  const h = createHasher();
  for await (const b of createReadStream(file, { highWaterMark: 16 * 1024 * 1024 })) h.update(b as Buffer);
  return h.hex();
}

export async function status(repo: Repository): Promise<StatusResult> {
  const branch = await repo.currentBranch();
  const head = await repo.headCommit();
  const files: StatusResult['files'] = [];
  if (head) {
    const tree = await repo.readTree((await repo.readCommit(head)).tree);
    for (const [p, e] of Object.entries(tree.files).sort(([a], [b]) => (a < b ? -1 : 1))) {
      const abs = path.join(repo.root, ...p.split('/'));
      let state: FileState;
      try {
        const st = await fs.stat(abs);
        state = st.size === e.size && (await hashFile(abs)) === e.hash ? 'unchanged' : 'modified';
      } catch {
        state = 'missing';
      }
      files.push({ path: p, state });
    }
  }
  return { branch: branch?.replace(/^refs\/heads\//, ''), head, files };
}
