/**
 * The page's pure functions: everything it draws is computed here from the ViewData document,
 * with no DOM, so tests run them in Node.
 */
import { groupPrefix } from '../../diff/diffSummary.js';
export { humanBytes as bytes } from '../../core/humanBytes.js';
import type { NumericTensorStats } from '../../diff/tensorDeltaStats.js';
import type { ViewData, ViewPair } from '../viewTypes.js';

export function decodeFloat32(b64: string): Float32Array {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

/** How a figure was obtained: from diff's reads, from chunk norms, or from whole-tensor norms. */
export type Basis = 'exact' | 'chunk-bound' | 'norm-bound';

export interface ModuleChange {
  prefix: string;
  /**
   * sqrt(Σ ||ΔT||²) / sqrt(Σ ||A_T||²) over the module's changed tensors with element values:
   * diff's relChange when the basis is exact, a lower bound of it otherwise. Null when no tensor
   * of the module changed with element values, or A is all zeros and the change is not.
   */
  rel: number | null;
  /** Changed tensors counted. */
  changed: number;
}

export interface PairChanges {
  a: number;
  b: number;
  basis: Basis;
  note?: string;
  modules: ModuleChange[];
  /** Per tensor index: the row of the diff when exact, or the bound of ||ΔT||/||A_T|| otherwise. */
  tensors: Map<number, TensorChange>;
}

export interface TensorChange {
  index: number;
  name: string;
  file: string;
  relL2: number | null;
  stats?: NumericTensorStats | { kind: 'bytes'; changedFraction: number };
}

const collator = new Intl.Collator('en', { numeric: true });

export class Model {
  readonly norms: Float32Array;
  readonly tensorCount: number;
  readonly byId = new Map<string, number>();
  private readonly tensorIndex = new Map<string, number>();
  private readonly pairByKey = new Map<string, ViewPair>();
  private readonly boundCache = new Map<ViewPair, Float32Array>();

  constructor(readonly data: ViewData) {
    this.norms = decodeFloat32(data.norms);
    this.tensorCount = data.tensors.name.length;
    data.commits.forEach((c, i) => this.byId.set(c.id, i));
    data.tensors.name.forEach((n, i) => this.tensorIndex.set(n, i));
    for (const p of data.pairs) if (!this.pairByKey.has(`${p.a},${p.b}`)) this.pairByKey.set(`${p.a},${p.b}`, p);
  }

  norm(commit: number, tensor: number): number {
    return this.norms[commit * this.tensorCount + tensor];
  }

  pair(a: number, b: number): ViewPair | undefined {
    return this.pairByKey.get(`${a},${b}`);
  }

  /** Deepest depth that still splits some name (a group prefix never takes the whole name). */
  maxDepth(): number {
    let d = 1;
    for (const n of this.data.tensors.name) d = Math.max(d, n.split('.').length - 1);
    return d;
  }

  private readonly grouping = new Map<number, { modules: string[]; row: Map<string, number> }>();

  /** Every module prefix at `depth`, in diff's order (numeric-aware), and the row of each tensor name. */
  private groups(depth: number): { modules: string[]; row: Map<string, number> } {
    let g = this.grouping.get(depth);
    if (!g) {
      const names = this.data.tensors.name;
      const prefixes = names.map((n) => groupPrefix(n, depth));
      const modules = [...new Set(prefixes)].sort(collator.compare);
      const rowOf = new Map(modules.map((m, i) => [m, i]));
      this.grouping.set(depth, (g = { modules, row: new Map(names.map((n, i) => [n, rowOf.get(prefixes[i])!])) }));
    }
    return g;
  }

  modules(depth: number): string[] {
    return this.groups(depth).modules;
  }

  /** The change from commit a to commit b, per tensor and per module at `depth`. */
  changes(a: number, b: number, depth: number): PairChanges {
    const pair = this.pair(a, b);
    const tensors = new Map<number, TensorChange>();
    const terms: { name: string; d2: number; n2: number }[] = [];
    const names = this.data.tensors;
    let basis: Basis;
    if (pair?.exact) {
      basis = 'exact';
      for (const row of pair.changed ?? []) {
        const index = this.tensorIndex.get(row.name) ?? this.tensorIndex.get(`${row.name}\0${row.file}`) ?? -1;
        const s = row.stats;
        if (s?.kind === 'numeric') {
          terms.push({ name: row.name, d2: s.l2Delta * s.l2Delta, n2: s.normA * s.normA });
          tensors.set(index, { index, name: row.name, file: row.file, relL2: s.relL2, stats: s });
        } else if (s) {
          tensors.set(index, { index, name: row.name, file: row.file, relL2: null, stats: { kind: 'bytes', changedFraction: s.changedFraction } });
        }
      }
    } else {
      basis = pair ? 'chunk-bound' : 'norm-bound';
      let bound = pair?.bound ? this.boundCache.get(pair) : undefined;
      if (pair?.bound && !bound) this.boundCache.set(pair, (bound = decodeFloat32(pair.bound)));
      for (let t = 0; t < this.tensorCount; t++) {
        const na = this.norm(a, t);
        const nb = this.norm(b, t);
        const n2 = na * na;
        let d2: number;
        if (bound) {
          d2 = bound[t];
        } else {
          // without the chunks' ids every tensor in both may have changed: all count in ||A||
          if (Number.isNaN(na) || Number.isNaN(nb)) continue;
          d2 = (nb - na) * (nb - na);
        }
        if (Number.isNaN(d2) || Number.isNaN(n2)) continue;
        terms.push({ name: names.name[t], d2, n2 });
        if (bound || d2 > 0) tensors.set(t, { index: t, name: names.name[t], file: names.file[t], relL2: n2 > 0 ? Math.sqrt(d2 / n2) : d2 === 0 ? 0 : null });
      }
    }
    const { modules: prefixes, row } = this.groups(depth);
    const d2 = new Float64Array(prefixes.length);
    const n2 = new Float64Array(prefixes.length);
    const changed = new Int32Array(prefixes.length);
    const hit = new Uint8Array(prefixes.length);
    for (const t of terms) {
      // diff's rows name tensors as the table does; a name it lacks groups like any other
      const r = row.get(t.name) ?? prefixes.indexOf(groupPrefix(t.name, depth));
      if (r < 0) continue;
      d2[r] += t.d2;
      n2[r] += t.n2;
      hit[r] = 1;
      if (basis !== 'norm-bound' || t.d2 > 0) changed[r]++;
    }
    const modules = prefixes.map((prefix, r) => {
      const rel = !hit[r] ? null : n2[r] > 0 ? Math.sqrt(d2[r] / n2[r]) : d2[r] === 0 ? 0 : null;
      return { prefix, rel, changed: changed[r] };
    });
    return { a, b, basis, note: pair?.note, modules, tensors };
  }

  /** The tensors of one module in a comparison, most changed first. */
  moduleTensors(ch: PairChanges, prefix: string, depth: number): TensorChange[] {
    const rank = (r: number | null) => r ?? Infinity;
    const { row, modules } = this.groups(depth);
    return [...ch.tensors.values()].filter((t) => modules[row.get(t.name) ?? -1] === prefix || (!row.has(t.name) && groupPrefix(t.name, depth) === prefix)).sort((x, y) => rank(y.relL2) - rank(x.relL2) || collator.compare(x.name, y.name));
  }

  /** A branch's first-parent chain, oldest first. */
  chain(branch: string): number[] {
    const b = this.data.branches.find((x) => x.name === branch);
    const out: number[] = [];
    for (let i = b ? this.byId.get(b.id) : undefined; i !== undefined; ) {
      out.push(i);
      const p = this.data.commits[i].parents[0];
      i = p === undefined ? undefined : this.byId.get(p);
    }
    return out.reverse();
  }
}

/** Which branch draws each commit: the first branch (current first, then by name) whose first-parent chain holds it. */
export function owners(data: ViewData, model: Model): (string | null)[] {
  const out: (string | null)[] = data.commits.map(() => null);
  const order = [...data.branches].sort((x, y) => Number(y.current) - Number(x.current) || collator.compare(x.name, y.name));
  for (const b of order) for (const i of model.chain(b.name)) out[i] ??= b.name;
  return out;
}

export interface GraphRow {
  commit: number;
  lane: number;
  /** Lanes of edges passing this row to older rows: [fromLane, toLane, parent commit]. */
  edges: { from: number; to: number; parent: number }[];
}

/**
 * Lanes for a commit graph drawn newest at the top: each open line waits for the commit it
 * leads to; a commit takes the lowest lane waiting for it (or a free one); its first parent
 * continues in that lane, another parent joins a line already waiting for it or gets a lane.
 */
export function layoutGraph(data: ViewData, model: Model): { rows: GraphRow[]; lanes: number } {
  const waiting: (number | null)[] = [];
  const rows: GraphRow[] = [];
  let lanes = 0;
  for (let i = data.commits.length - 1; i >= 0; i--) {
    let lane = waiting.indexOf(i);
    if (lane < 0) {
      lane = waiting.indexOf(null);
      if (lane < 0) lane = waiting.push(null) - 1;
    }
    for (let l = 0; l < waiting.length; l++) if (waiting[l] === i) waiting[l] = null;
    const parents = data.commits[i].parents.map((p) => model.byId.get(p)).filter((p): p is number => p !== undefined);
    const edges: GraphRow['edges'] = [];
    parents.forEach((p, k) => {
      let to = k === 0 ? lane : waiting.indexOf(p);
      if (k === 0) {
        // the first parent continues this lane, even when another line waits for it too: the
        // parent takes the lowest lane waiting for it, and the other lines bend into it there
        waiting[lane] = p;
      } else if (to < 0) {
        to = waiting.indexOf(null);
        if (to < 0) to = waiting.push(null) - 1;
        waiting[to] = p;
      }
      edges.push({ from: lane, to, parent: p });
    });
    lanes = Math.max(lanes, waiting.length, lane + 1);
    rows.push({ commit: i, lane, edges });
    while (waiting.length && waiting[waiting.length - 1] === null) waiting.pop();
  }
  return { rows, lanes };
}

/** Step when every commit with a metric has one, else the commit's position. */
export function xOf(data: ViewData): (i: number) => number {
  const useStep = data.commits.every((c) => !c.meta.metrics || Object.keys(c.meta.metrics).length === 0 || typeof c.meta.step === 'number');
  return useStep ? (i) => data.commits[i].meta.step ?? i : (i) => i;
}

export interface MetricSeries {
  metric: string;
  xs: number[];
  /** One line per branch: y per x (null where the branch has no point), and the commit behind each point. */
  lines: { branch: string; ys: (number | null)[]; commits: (number | null)[] }[];
}

/** A metric over step, one line per branch over the commits it draws (joined to its fork point). */
export function metricSeries(data: ViewData, model: Model, metric: string): MetricSeries {
  const own = owners(data, model);
  const x = xOf(data);
  const lines: { branch: string; pts: Map<number, number> }[] = [];
  const xset = new Set<number>();
  for (const b of data.branches) {
    const pts = new Map<number, number>();
    const chain = model.chain(b.name);
    chain.forEach((i, k) => {
      const v = data.commits[i].meta.metrics?.[metric];
      if (typeof v !== 'number') return;
      const mine = own[i] === b.name;
      const forkPoint = !mine && k + 1 < chain.length && own[chain[k + 1]] === b.name;
      if (!mine && !forkPoint) return;
      if (!pts.has(x(i)) || mine) pts.set(x(i), i);
      xset.add(x(i));
    });
    if ([...pts.values()].some((i) => own[i] === b.name)) lines.push({ branch: b.name, pts });
  }
  const xs = [...xset].sort((p, q) => p - q);
  return {
    metric,
    xs,
    lines: lines.map((l) => ({
      branch: l.branch,
      ys: xs.map((v) => (l.pts.has(v) ? (data.commits[l.pts.get(v)!].meta.metrics![metric] as number) : null)),
      commits: xs.map((v) => l.pts.get(v) ?? null),
    })),
  };
}

/** Short human figures: four significant digits, exponent form where shorter. */
export function fmt(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '–';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e6) return String(Number(x.toPrecision(4)));
  return x.toExponential(2);
}

/**
 * The log-scale range a heatmap colours: up to its largest value, from its smallest but spanning
 * at least three decades (values a few percent apart look alike) and at most six; 1e-6..1 when
 * nothing changed.
 */
export function heatRange(values: (number | null)[]): [number, number] {
  let hi = 0;
  let lo = Infinity;
  for (const v of values) if (v !== null && v > 0 && Number.isFinite(v)) (hi = Math.max(hi, v)), (lo = Math.min(lo, v));
  if (hi === 0) return [1e-6, 1];
  return [Math.min(Math.max(lo, hi / 1e6), hi / 1e3), hi];
}

/** Colour of a relative change on a log scale over [lo, hi] (viridis stops); red for a change from zero. */
export function heatColor(rel: number | null, lo = 1e-6, hi = 1): string {
  if (rel === null) return '#d62728';
  if (rel <= 0) return '#f4f4f6';
  const t = Math.min(1, Math.max(0, (Math.log10(rel) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))));
  const stops = [
    [68, 1, 84],
    [59, 82, 139],
    [33, 145, 140],
    [94, 201, 98],
    [253, 231, 37],
  ];
  const f = t * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(f));
  const u = f - i;
  const c = stops[i].map((v, k) => Math.round(v + (stops[i + 1][k] - v) * u));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
