/**
 * Which commits had their data dropped by retention. Commits are immutable and named by their
 * bytes, so the mark lives beside them: `pruned/<commit-id>` in the store's backend, a small JSON
 * file with the time and the reason. History keeps the commit; gc stops keeping its chunks.
 */
import { isObjectId, type ObjectId } from '../core/objectId.js';
import type { Backend } from '../backend/backend.js';
import { markKey } from '../backend/objectKeys.js';

export interface PrunedMark {
  /** Milliseconds since the epoch. */
  time: number;
  reason: string;
}

export class PrunedMarks {
  constructor(private readonly backend: Backend) {}

  async all(): Promise<Map<ObjectId, PrunedMark>> {
    const out = new Map<ObjectId, PrunedMark>();
    for (const k of await this.backend.list('pruned/')) {
      const id = k.key.slice('pruned/'.length);
      if (!isObjectId(id)) continue;
      const mark = await this.get(id, k.mtimeMs);
      if (mark) out.set(id, mark);
    }
    return out;
  }

  async get(id: ObjectId, mtimeMs?: number): Promise<PrunedMark | undefined> {
    const b = await this.backend.readFile(markKey(id));
    if (!b) return undefined;
    try {
      const v = JSON.parse(Buffer.from(b).toString('utf8')) as PrunedMark;
      if (typeof v.time === 'number') return v;
    } catch {
      // fall through: a torn mark still means the commit was pruned
    }
    return { time: mtimeMs ?? (await this.backend.stat(markKey(id)))?.mtimeMs ?? 0, reason: 'unknown' };
  }

  async put(id: ObjectId, mark: PrunedMark): Promise<void> {
    await this.backend.writeFile(markKey(id), Buffer.from(`${JSON.stringify(mark)}\n`, 'utf8'));
  }

  async remove(id: ObjectId): Promise<void> {
    await this.backend.delete(markKey(id));
  }
}
