/**
 * The summary of a state diff: how much each module (tensor-name prefix) moved, and the tensors
 * that moved most. Works on a StateDiff whose changed tensors carry their TensorStats.
 */
import type { StateDiff, TensorLoc } from './stateDiff.js';
import type { TensorStats } from './tensorDeltaStats.js';

export interface GroupSummary {
  /** Tensor-name prefix ending in '.', e.g. 'blocks.3.'; '' for the whole diff or for names with no dot. */
  prefix: string;
  /** Tensors compared: in B, plus those removed from A. */
  tensors: number;
  /** Tensors whose values changed (same name, dtype and shape, other bytes). */
  changed: number;
  /** Tensors added, removed, renamed, or given another dtype or shape. */
  restructured: number;
  params: number;
  /**
   * Elements changed: counted in tensors with element statistics, plus every element of added,
   * removed and retyped tensors. Quantized tensors (byte statistics only) add nothing here.
   */
  paramsChanged: number;
  /**
   * sqrt(sum ||delta||²) / sqrt(sum ||A||²) over the group's changed tensors with element
   * statistics; null when there are none, or when A is all zeros and the delta is not.
   */
  relChange: number | null;
}

export interface TopTensor {
  name: string;
  file: string;
  relL2: number | null;
  l2Delta: number;
  cosine: number | null;
  changedFraction: number;
  maxAbsDelta: number;
}

export interface DiffSummary {
  groupDepth: number;
  total: GroupSummary;
  groups: GroupSummary[];
  /** The changed tensors with element statistics, by relL2 descending (null first: a change from all zeros), ties by name. */
  top: TopTensor[];
}

export interface DiffResult extends StateDiff<TensorStats> {
  summary: DiffSummary;
}

export interface SummaryOptions {
  /** Name components in a group prefix. */
  groupDepth?: number;
  /** How many tensors `top` lists. */
  top?: number;
}

/** The first `depth` dot-separated components of a name, never the whole name: a tensor is not its own module. */
export function groupPrefix(name: string, depth: number): string {
  const parts = name.split('.');
  const taken = parts.slice(0, Math.min(depth, parts.length - 1));
  return taken.length ? `${taken.join('.')}.` : '';
}

class Group {
  tensors = 0;
  changed = 0;
  restructured = 0;
  params = 0;
  paramsChanged = 0;
  deltaSq = 0;
  normSq = 0;
  measured = false;

  summary(prefix: string): GroupSummary {
    let relChange: number | null = null;
    if (this.measured) {
      relChange = this.normSq > 0 ? Math.sqrt(this.deltaSq / this.normSq) : this.deltaSq === 0 ? 0 : null;
    }
    const { tensors, changed, restructured, params, paramsChanged } = this;
    return { prefix, tensors, changed, restructured, params, paramsChanged, relChange };
  }
}

// Module names hold layer numbers: blocks.2 sorts before blocks.10.
const collator = new Intl.Collator('en', { numeric: true });

export function summarizeDiff(diff: StateDiff<TensorStats>, opts: SummaryOptions = {}): DiffSummary {
  const depth = opts.groupDepth ?? 2;
  const k = opts.top ?? 10;
  const total = new Group();
  const groups = new Map<string, Group>();
  const visit = (name: string, fn: (g: Group) => void) => {
    const prefix = groupPrefix(name, depth);
    let g = groups.get(prefix);
    if (!g) groups.set(prefix, (g = new Group()));
    fn(g);
    fn(total);
  };
  const restructured = (t: TensorLoc, paramsChanged: number) =>
    visit(t.name, (g) => {
      g.tensors++;
      g.restructured++;
      g.params += t.elements;
      g.paramsChanged += paramsChanged;
    });

  const { tensors } = diff;
  for (const t of tensors.added) restructured(t, t.elements);
  for (const t of tensors.removed) restructured(t, t.elements);
  for (const r of tensors.renamed) restructured(r.to, 0);
  for (const r of [...tensors.dtypeChanged, ...tensors.shapeChanged]) restructured(r.b, r.sameBytes ? 0 : r.b.elements);
  for (const t of tensors.unchanged) {
    visit(t.name, (g) => {
      g.tensors++;
      g.params += t.elements;
    });
  }
  for (const t of tensors.changed) {
    const s = t.stats;
    visit(t.name, (g) => {
      g.tensors++;
      g.changed++;
      g.params += t.elements;
      if (s?.kind === 'numeric') {
        g.paramsChanged += s.changed;
        g.deltaSq += s.l2Delta * s.l2Delta;
        g.normSq += s.normA * s.normA;
        g.measured = true;
      }
    });
  }

  const top: TopTensor[] = [];
  for (const t of tensors.changed) {
    const s = t.stats;
    if (s?.kind !== 'numeric') continue;
    top.push({
      name: t.name,
      file: t.file,
      relL2: s.relL2,
      l2Delta: s.l2Delta,
      cosine: s.cosine,
      changedFraction: s.changedFraction,
      maxAbsDelta: s.maxAbsDelta,
    });
  }
  const rank = (r: number | null) => r ?? Infinity;
  top.sort((p, q) => rank(q.relL2) - rank(p.relL2) || (p.name < q.name ? -1 : p.name > q.name ? 1 : 0));

  return {
    groupDepth: depth,
    total: total.summary(''),
    groups: [...groups.keys()].sort(collator.compare).map((p) => groups.get(p)!.summary(p)),
    top: top.slice(0, k),
  };
}
