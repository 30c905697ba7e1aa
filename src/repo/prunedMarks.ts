/**
 * Which commits had their data dropped by retention. Commits are immutable and named by their
 * bytes, so the mark lives beside them: `.ckpt/pruned/<commit-id>`, a small JSON file with the
 * time and the reason. History keeps the commit; gc stops keeping its chunks.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';
import { isObjectId, type ObjectId } from '../core/objectId.js';
import { readFileOrUndefined, writeFileAtomic } from '../backend/atomicFile.js';
import type { Repository } from './repository.js';

export interface PrunedMark {
  /** Milliseconds since the epoch. */
  time: number;
  reason: string;
}

const dirOf = (repo: Repository) => path.join(repo.store.dir, 'pruned');

export async function readPrunedMarks(repo: Repository): Promise<Map<ObjectId, PrunedMark>> {
  const out = new Map<ObjectId, PrunedMark>();
  let names: string[];
  try {
    names = await fs.readdir(dirOf(repo));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw e;
  }
  for (const n of names) {
    if (!isObjectId(n)) continue;
    const mark = await readPrunedMark(repo, n);
    if (mark) out.set(n, mark);
  }
  return out;
}

export async function readPrunedMark(repo: Repository, id: ObjectId): Promise<PrunedMark | undefined> {
  const file = path.join(dirOf(repo), id);
  const b = await readFileOrUndefined(file);
  if (!b) return undefined;
  try {
    const v = JSON.parse(b.toString('utf8')) as PrunedMark;
    if (typeof v.time === 'number') return v;
  } catch {
    // fall through: a torn mark still means the commit was pruned
  }
  return { time: (await fs.stat(file)).mtimeMs, reason: 'unknown' };
}

export async function writePrunedMark(repo: Repository, id: ObjectId, mark: PrunedMark): Promise<void> {
  await writeFileAtomic(path.join(dirOf(repo), id), `${JSON.stringify(mark)}\n`, repo.store.tmpDir);
}

export async function removePrunedMark(repo: Repository, id: ObjectId): Promise<void> {
  await fs.rm(path.join(dirOf(repo), id), { force: true });
}

export class PrunedCommitError extends CkptError {
  constructor(id: ObjectId, mark: PrunedMark) {
    super('E_PRUNED', `commit ${id.slice(0, 12)} was pruned at ${new Date(mark.time).toISOString()} (${mark.reason}); its metadata is kept but its data is gone`, {
      id,
      prunedAt: new Date(mark.time).toISOString(),
      reason: mark.reason,
    });
    this.name = 'PrunedCommitError';
  }
}

/** Throws E_PRUNED when the commit's data was dropped. */
export async function assertNotPruned(repo: Repository, id: ObjectId): Promise<void> {
  const mark = await readPrunedMark(repo, id);
  if (mark) throw new PrunedCommitError(id, mark);
}
