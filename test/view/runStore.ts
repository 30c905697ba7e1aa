/**
 * Stores for the view tests. `makeRunStore` commits the real training run in fixtures/view-run
 * (made by its make_run.py with torch): main's six checkpoints, a `finetune` branch forked at
 * step 300, a linear 0.5/0.5 merge of both tips made by `ckpt merge` (its recipe in
 * meta.extra.merge; the fixture's merged.pt, torch's own average, is not committed), and one
 * commit pruned by a retention policy.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ObjectId } from '../../src/core/objectId.js';
import { main } from '../../src/cli/main.js';
import { createRef } from '../../src/repo/branches.js';
import { commitFiles } from '../../src/repo/commit.js';
import { prune } from '../../src/repo/prune.js';
import { Repository } from '../../src/repo/repository.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'view-run');

interface RunFile {
  checkpoints: { file: string; branch: string; step: number; metrics: Record<string, number> }[];
  merge: Record<string, unknown>;
}

export interface RunStore {
  repo: Repository;
  /** Commit id by checkpoint file. */
  ids: Record<string, ObjectId>;
  merge: ObjectId;
  pruned: ObjectId[];
  run: RunFile;
}

export async function makeRunStore(dir: string): Promise<RunStore> {
  const run = JSON.parse(await fs.readFile(path.join(fixtures, 'run.json'), 'utf8')) as RunFile;
  const repo = await Repository.init(dir, { author: 'trainer@example' });
  const ids: Record<string, ObjectId> = {};
  for (const ck of run.checkpoints) {
    if (ck.file === 'merged.pt') continue;
    if (ck.branch === 'finetune' && !(await repo.store.refs.read('refs/heads/finetune'))) await createRef(repo, 'heads', 'finetune', ids['main_300.pt']);
    const file = path.join(dir, 'ckpt', ck.file);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.copyFile(path.join(fixtures, ck.file), file);
    const r = await commitFiles(repo, [file], {
      message: ck.file === 'merged.pt' ? 'merged weights' : `${ck.branch} step ${ck.step}`,
      branch: ck.branch,
      meta: { step: ck.step, metrics: ck.metrics },
      code: { commit: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678', branch: 'train', dirty: ck.branch === 'finetune' },
    });
    ids[ck.file] = r.id;
  }
  // the merge make_run.py did in torch, made by `ckpt merge` (in process) from the two tips
  const said: string[] = [];
  const code = await main(['merge', 'main', 'finetune', '--method', 'linear', '--weights', '0.5,0.5', '-m', 'merge finetune into main (linear, 0.5/0.5)', '--json', '--cwd', dir], {
    stdout: { write: (s: string) => said.push(s) },
    stderr: { write: (s: string) => said.push(s) },
  });
  if (code !== 0) throw new Error(`ckpt merge failed: ${said.join('')}`);
  const merge = (await repo.store.refs.read('refs/heads/main'))!;
  ids['merged.pt'] = merge;
  // the last four of each branch's first-parent line stay: main's steps 100 and 200 go
  const result = await prune(repo, { keepLast: 4 });
  return { repo, ids, merge, pruned: result.pruned.map((d) => d.id), run };
}
