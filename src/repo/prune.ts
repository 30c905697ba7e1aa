/**
 * `ckpt prune`: retention that keeps the history and drops the data. Rules are applied to the
 * first-parent history of every branch; a commit is kept if any rule keeps it, and the commit a
 * ref points to is always kept. The others are marked pruned (src/store/prunedMarks.ts) and gc frees the
 * chunks no kept commit shares. A mark is never taken back: once gc ran, the data is gone.
 */
import { UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { Commit } from '../core/objects.js';
import { assertPacksIntact, gc, type GcResult } from './gc.js';
import { defaultMode, firstParentHistory, type MetricMode } from './metricSearch.js';
import type { PrunedMark } from '../store/prunedMarks.js';
import { findRoots } from './reachability.js';
import type { Repository } from './repository.js';

export interface RetentionPolicy {
  keepLast?: number;
  keepBest?: number;
  metric?: string;
  mode?: MetricMode;
  keepEverySteps?: number;
  /** Keep commits younger than this many milliseconds. */
  keepWithinMs?: number;
}

export interface PruneOptions {
  dryRun?: boolean;
  /** Mark only; leave freeing the data to a later `ckpt gc`. */
  noGc?: boolean;
  lockTimeoutMs?: number;
}

export interface PruneDecision {
  id: ObjectId;
  step?: number;
  time: number;
  message: string;
  /** Why it is kept; empty when it is pruned. */
  reasons: string[];
  /** Pruned by an earlier run. */
  alreadyPruned: boolean;
}

export interface PruneResult {
  dryRun: boolean;
  kept: PruneDecision[];
  /** Newly marked by this run. */
  pruned: PruneDecision[];
  alreadyPruned: number;
  gc?: GcResult;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000 };

/** "7d", "12h", "1w3d", "90m": restic's --keep-within durations, in milliseconds. */
export function parseDuration(text: string): number {
  const parts = text.match(/\d+[smhdwy]/g);
  if (!parts || parts.join('') !== text) throw new UsageError(`invalid duration ${JSON.stringify(text)} (use e.g. 7d, 12h, 1w3d)`);
  return parts.reduce((n, p) => n + Number(p.slice(0, -1)) * UNITS[p.slice(-1)], 0);
}

function validate(p: RetentionPolicy): void {
  const counts: [string, number | undefined][] = [
    ['--keep-last', p.keepLast],
    ['--keep-best', p.keepBest],
    ['--keep-every-steps', p.keepEverySteps],
  ];
  for (const [flag, v] of counts) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < (flag === '--keep-every-steps' ? 1 : 0))) {
      throw new UsageError(`${flag} needs a whole number, got ${v}`);
    }
  }
  if (p.keepBest !== undefined && !p.metric) throw new UsageError('--keep-best needs --metric NAME');
  if (p.keepLast === undefined && p.keepBest === undefined && p.keepEverySteps === undefined && p.keepWithinMs === undefined) {
    // restic refuses too: an empty policy would drop the data of every commit but the heads
    throw new UsageError('no retention rule given (use --keep-last, --keep-best, --keep-every-steps or --keep-within)');
  }
}

/** Applies the rules to one branch's history, newest first; returns id -> reasons. */
function applyRules(line: { id: ObjectId; commit: Commit }[], p: RetentionPolicy, now: number, keep: (id: ObjectId, why: string) => void): void {
  if (p.keepLast) for (const { id } of line.slice(0, p.keepLast)) keep(id, `last ${p.keepLast}`);
  if (p.keepBest && p.metric) {
    const metric = p.metric;
    const mode = p.mode ?? defaultMode(metric);
    const scored = line.filter(({ commit }) => typeof commit.meta.metrics?.[metric] === 'number' && !Number.isNaN(commit.meta.metrics[metric]));
    // stable sort keeps the newest first among equal values
    scored.sort((a, b) => (mode === 'min' ? 1 : -1) * (a.commit.meta.metrics![metric] - b.commit.meta.metrics![metric]));
    for (const { id } of scored.slice(0, p.keepBest)) keep(id, `best ${p.keepBest} by ${metric} (${mode})`);
  }
  if (p.keepEverySteps) {
    const firstInBucket = new Map<number, { id: ObjectId; step: number }>();
    for (const { id, commit } of line) {
      const step = commit.meta.step;
      if (typeof step !== 'number') continue;
      const b = Math.floor(step / p.keepEverySteps);
      const cur = firstInBucket.get(b);
      if (!cur || step <= cur.step) firstInBucket.set(b, { id, step });
    }
    for (const { id } of firstInBucket.values()) keep(id, `every ${p.keepEverySteps} steps`);
  }
  if (p.keepWithinMs !== undefined) {
    for (const { id, commit } of line) if (commit.time >= now - p.keepWithinMs) keep(id, `within ${Math.round(p.keepWithinMs / 3600_000)}h`);
  }
}

export async function prune(repo: Repository, policy: RetentionPolicy, opts: PruneOptions = {}): Promise<PruneResult> {
  validate(policy);
  const lock = await repo.store.lockExclusive({ timeoutMs: opts.lockTimeoutMs });
  try {
    const now = repo.clock();
    const roots = await findRoots(repo, { reflogWindowMs: 0 });
    const marks = await repo.store.pruned.all();
    const reasons = new Map<ObjectId, string[]>();
    const commits = new Map<ObjectId, Commit>();
    const keep = (id: ObjectId, why: string) => reasons.set(id, [...(reasons.get(id) ?? []), why]);
    for (const [ref, id] of roots.refs) keep(id, ref === 'HEAD' ? 'HEAD' : ref.replace(/^refs\/(heads|tags|remotes)\//, (_, k: string) => (k === 'tags' ? 'tag ' : k === 'heads' ? 'branch ' : 'remote ')));
    const branchTips = [...roots.refs].filter(([ref]) => ref.startsWith('refs/heads/') || ref === 'HEAD').map(([, id]) => id);
    for (const tip of new Set(branchTips)) {
      const line: { id: ObjectId; commit: Commit }[] = [];
      for await (const e of firstParentHistory(repo, tip)) line.push(e);
      for (const e of line) commits.set(e.id, e.commit);
      applyRules(line, policy, now, keep);
    }
    // commits reachable only through tags or remote refs are candidates too
    for (const [, id] of roots.refs) {
      for await (const e of firstParentHistory(repo, id)) {
        if (commits.has(e.id)) break;
        commits.set(e.id, e.commit);
      }
    }

    const decide = (id: ObjectId, c: Commit): PruneDecision => ({
      id,
      ...(c.meta.step !== undefined ? { step: c.meta.step } : {}),
      time: c.time,
      message: c.message.split('\n')[0],
      reasons: reasons.get(id) ?? [],
      alreadyPruned: marks.has(id),
    });
    const ordered = [...commits].sort(([, a], [, b]) => b.time - a.time);
    const kept = ordered.filter(([id]) => reasons.has(id)).map(([id, c]) => decide(id, c));
    const drop = ordered.filter(([id]) => !reasons.has(id)).map(([id, c]) => decide(id, c));
    const fresh = drop.filter((d) => !d.alreadyPruned);
    const reasonText = describe(policy);
    const newMarks = new Map<ObjectId, PrunedMark>(fresh.map((d) => [d.id, { time: now, reason: reasonText }]));

    if (!opts.dryRun && !opts.noGc) await assertPacksIntact(repo.store); // damage found before a mark is written
    if (!opts.dryRun) for (const [id, mark] of newMarks) await repo.store.pruned.put(id, mark);
    const result: PruneResult = { dryRun: Boolean(opts.dryRun), kept, pruned: fresh, alreadyPruned: drop.length - fresh.length };
    if (!opts.noGc) {
      result.gc = await gc(repo, { lockHeld: true, dryRun: opts.dryRun, ...(opts.dryRun ? { assumePruned: newMarks } : {}) });
    }
    return result;
  } finally {
    await lock.release();
  }
}

function describe(p: RetentionPolicy): string {
  const parts: string[] = [];
  if (p.keepLast !== undefined) parts.push(`--keep-last ${p.keepLast}`);
  if (p.keepBest !== undefined) parts.push(`--keep-best ${p.keepBest} --metric ${p.metric} --mode ${p.mode ?? defaultMode(p.metric!)}`);
  if (p.keepEverySteps !== undefined) parts.push(`--keep-every-steps ${p.keepEverySteps}`);
  if (p.keepWithinMs !== undefined) parts.push(`--keep-within ${p.keepWithinMs}ms`);
  return `prune ${parts.join(' ')}`;
}
