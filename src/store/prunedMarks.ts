/**
 * Which commits had their data dropped by retention. Commits are immutable and named by their
 * bytes, so the mark lives beside them: `pruned/<commit-id>`, a small JSON file with the time and
 * the reason. History keeps the commit; gc stops keeping its chunks.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isObjectId, type ObjectId } from '../core/objectId.js';
import { readFileOrUndefined, writeFileAtomic } from '../backend/atomicFile.js';

export interface PrunedMark {
  /** Milliseconds since the epoch. */
  time: number;
  reason: string;
}

export class PrunedMarks {
  constructor(
    /** The store's `pruned/` folder. */
    private readonly dir: string,
    private readonly tmpDir: string,
  ) {}

  async all(): Promise<Map<ObjectId, PrunedMark>> {
    const out = new Map<ObjectId, PrunedMark>();
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return out;
      throw e;
    }
    for (const n of names) {
      if (!isObjectId(n)) continue;
      const mark = await this.get(n);
      if (mark) out.set(n, mark);
    }
    return out;
  }

  async get(id: ObjectId): Promise<PrunedMark | undefined> {
    const file = path.join(this.dir, id);
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

  async put(id: ObjectId, mark: PrunedMark): Promise<void> {
    await writeFileAtomic(path.join(this.dir, id), `${JSON.stringify(mark)}\n`, this.tmpDir);
  }

  async remove(id: ObjectId): Promise<void> {
    await fs.rm(path.join(this.dir, id), { force: true });
  }
}
