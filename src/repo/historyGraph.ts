/**
 * `ckpt log --graph`: every commit reachable from the starting points (all parents, not only the
 * first), children before parents and newest first otherwise, drawn in lanes the way
 * `git log --graph` draws them: `*` for a commit, `|` for a line of history passing by, `|\` where a
 * merge opens lanes for its further parents and `|/` where two lanes reach the same commit.
 */
import type { ObjectId } from '../core/objectId.js';
import type { Commit } from '../core/objects.js';
import type { Repository } from './repository.js';

export interface GraphRow {
  /** The graph part of the line. */
  graph: string;
  /** Set on a commit's own line. */
  id?: ObjectId;
  commit?: Commit;
}

/** Commits reachable from `starts`, in topological order (children first), newest first among the ready. */
export async function topoOrder(repo: Repository, starts: ObjectId[], limit = Infinity): Promise<{ id: ObjectId; commit: Commit }[]> {
  const commits = new Map<ObjectId, Commit>();
  const stack = [...starts];
  while (stack.length) {
    const id = stack.pop()!;
    if (commits.has(id)) continue;
    const c = await repo.readCommit(id);
    commits.set(id, c);
    stack.push(...c.parents);
  }
  const children = new Map<ObjectId, number>();
  for (const c of commits.values()) for (const p of c.parents) children.set(p, (children.get(p) ?? 0) + 1);
  const ready = [...commits.keys()].filter((id) => !children.get(id));
  const out: { id: ObjectId; commit: Commit }[] = [];
  const newer = (a: ObjectId, b: ObjectId) => commits.get(a)!.time - commits.get(b)!.time || (a < b ? 1 : -1);
  while (ready.length && out.length < limit) {
    ready.sort(newer);
    const id = ready.pop()!;
    const commit = commits.get(id)!;
    out.push({ id, commit });
    for (const p of commit.parents) {
      const left = children.get(p)! - 1;
      children.set(p, left);
      if (left === 0) ready.push(p);
    }
  }
  return out;
}

/** A line of lanes: `|` at column 2i for lane i, and the given characters at other columns. */
function render(lanes: number, marks: Record<number, string>): string {
  const width = Math.max(2 * lanes - 1, ...Object.keys(marks).map((k) => Number(k) + 1), 0);
  const cells = new Array<string>(width).fill(' ');
  for (let i = 0; i < lanes; i++) cells[2 * i] = '|';
  for (const [col, ch] of Object.entries(marks)) cells[Number(col)] = ch;
  return cells.join('').trimEnd();
}

/**
 * The graph lines for commits in topological order. A merge's further parents get lanes of their
 * own unless a lane already leads to them; lanes that come to wait for the same commit join with
 * `/`, the lanes to their right moving one to the left.
 */
export function drawGraph(order: { id: ObjectId; commit: Commit }[]): GraphRow[] {
  const shown = new Set(order.map((o) => o.id));
  const rows: GraphRow[] = [];
  let lanes: ObjectId[] = [];
  for (const { id, commit } of order) {
    let col = lanes.indexOf(id);
    if (col < 0) {
      lanes.push(id);
      col = lanes.length - 1;
    }
    rows.push({ graph: render(lanes.length, { [2 * col]: '*' }), id, commit });
    const parents = commit.parents.filter((p) => shown.has(p));
    if (parents.length === 0) {
      lanes.splice(col, 1);
      const marks: Record<number, string> = {};
      for (let k = col; k < lanes.length; k++) marks[2 * k + 1] = '/';
      if (col < lanes.length) rows.push({ graph: render(col, marks) });
    } else {
      lanes[col] = parents[0];
      const extra = parents.slice(1).filter((p) => !lanes.includes(p));
      if (extra.length) {
        lanes = [...lanes.slice(0, col + 1), ...extra, ...lanes.slice(col + 1)];
        const marks: Record<number, string> = {};
        for (let k = col + 1; k < lanes.length; k++) marks[2 * k - 1] = '\\';
        rows.push({ graph: render(col + 1, marks) });
      }
    }
    // lanes that now wait for the same commit join
    for (;;) {
      let j = -1;
      for (let b = 1; b < lanes.length && j < 0; b++) if (lanes.indexOf(lanes[b]) < b) j = b;
      if (j < 0) break;
      lanes.splice(j, 1);
      const marks: Record<number, string> = {};
      for (let k = j; k <= lanes.length; k++) marks[2 * k - 1] = '/';
      rows.push({ graph: render(j, marks) });
    }
  }
  return rows;
}
