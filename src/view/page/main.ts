/**
 * The `ckpt view` page: draws the ViewData document held in #ckpt-data. Every string from the
 * document reaches the page through textContent or an attribute value set from script, never as
 * markup.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './page.css';
import type { ViewData } from '../viewTypes.js';
import { bytes, fmt, heatColor, heatRange, layoutGraph, metricSeries, Model, owners, type PairChanges, type TensorChange } from './model.js';

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#d62728', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

const short = (id: string) => id.slice(0, 10);
const firstLine = (s: string) => s.split('\n')[0];
const when = (t: number) => new Date(t).toISOString().replace('T', ' ').slice(0, 16);

const data = JSON.parse(document.getElementById('ckpt-data')!.textContent!) as ViewData;
const model = new Model(data);
const own = owners(data, model);
const branchColor = new Map(data.branches.map((b, i) => [b.name, PALETTE[i % PALETTE.length]]));
const colorOf = (i: number) => (data.commits[i].pruned ? '#b8b8b8' : branchColor.get(own[i] ?? '') ?? '#555');

/** Primary selection, and the commit it is compared with (shift-click). */
let selected: number | null = data.selected ? data.selected[1] : data.commits.length ? data.commits.length - 1 : null;
let compareWith: number | null = data.selected ? data.selected[0] : null;
const listeners: (() => void)[] = [];
function select(i: number, compare = false): void {
  if (compare && selected !== null && i !== selected) {
    compareWith = selected;
    selected = i;
    // the heatmap turns to the pair
    branchSel.value = '\0pair';
    heatCell = null;
  } else {
    selected = i;
    compareWith = null;
  }
  for (const f of listeners) f();
}

const app = document.getElementById('app')!;

// ---- header
const header = el('header');
const h1 = el('h1');
h1.append(el('span', 'logo', 'ckpt'), document.createTextNode(' '), el('span', 'title', data.title));
header.append(h1);
const facts = el('p', 'facts');
const tensorsShown = data.tensors.name.length;
facts.textContent = `${data.commits.length} commits · ${data.branches.length} branches · ${data.tags.length} tags · ${tensorsShown} tensors · written ${when(Date.parse(data.generated))} UTC`;
header.append(facts);
app.append(header);

// ---- history + details
const top = el('div', 'top');
const histSec = el('section', 'card history');
histSec.append(el('h2', undefined, 'History'));
const hint = el('p', 'hint', 'Click a commit to select it; shift-click a second one to compare the two.');
histSec.append(hint);
const graphBox = el('div', 'graph');
histSec.append(graphBox);
const details = el('aside', 'card details');
top.append(histSec, details);
app.append(top);

const ROW = 28;
const LANE = 16;
function drawGraph(): void {
  const { rows, lanes } = layoutGraph(data, model);
  const rowOf = new Map(rows.map((r, k) => [r.commit, k]));
  const laneOf = new Map(rows.map((r) => [r.commit, r.lane]));
  const width = Math.max(1, lanes) * LANE + 8;
  const x = (l: number) => 8 + l * LANE + LANE / 2 - 4;
  const y = (k: number) => k * ROW + ROW / 2;
  const s = svg('svg', { width, height: rows.length * ROW, class: 'lanes' });
  rows.forEach((r, k) => {
    r.edges.forEach((e, n) => {
      const pk = rowOf.get(e.parent)!;
      const pl = laneOf.get(e.parent)!;
      const d = `M${x(e.from)},${y(k)} L${x(e.to)},${y(k) + ROW * 0.6} L${x(e.to)},${y(pk) - ROW * 0.6} L${x(pl)},${y(pk)}`;
      // a first parent continues the child's line; a merged-in parent keeps its own colour
      const owner = own[n === 0 ? r.commit : e.parent];
      s.append(svg('path', { d, fill: 'none', stroke: branchColor.get(owner ?? '') ?? '#999', 'stroke-width': 2, opacity: 0.8 }));
    });
  });
  rows.forEach((r, k) => {
    const c = data.commits[r.commit];
    const merge = c.parents.length > 1;
    const dot = svg('circle', { cx: x(r.lane), cy: y(k), r: merge ? 6 : 5, fill: c.pruned ? '#fff' : colorOf(r.commit), stroke: c.pruned ? '#9a9a9a' : '#fff', 'stroke-width': 2 });
    s.append(dot);
  });
  graphBox.style.setProperty('--lanes-width', `${width}px`);
  graphBox.append(s);
  const list = el('div', 'rows');
  for (const r of rows) {
    const i = r.commit;
    const c = data.commits[i];
    const row = el('div', 'row');
    row.dataset.commit = c.id;
    if (c.pruned) row.classList.add('pruned');
    row.append(el('span', 'id', short(c.id)));
    for (const ref of c.refs) {
      const isTag = ref.startsWith('tag: ');
      const b = el('span', isTag ? 'ref tag' : 'ref branch', isTag ? ref.slice(5) : ref);
      if (!isTag) b.style.borderColor = branchColor.get(ref) ?? '#888';
      row.append(b);
    }
    if (c.parents.length > 1) row.append(el('span', 'ref merge', 'merge'));
    if (c.pruned) row.append(el('span', 'ref prunedtag', 'pruned'));
    row.append(el('span', 'msg', firstLine(c.message)));
    const meta = el('span', 'meta');
    if (c.meta.step !== undefined) meta.append(el('span', 'step', `step ${c.meta.step}`));
    if (c.code?.commit) meta.append(el('span', 'code', `code ${c.code.commit.slice(0, 7)}${c.code.dirty ? '+' : ''}`));
    row.append(meta);
    row.title = `${c.id}\n${c.message}`;
    row.addEventListener('click', (ev) => select(i, ev.shiftKey || ev.metaKey || ev.ctrlKey));
    list.append(row);
  }
  graphBox.append(list);
  listeners.push(() => {
    for (const node of list.children) {
      const e = node as HTMLElement;
      const i = model.byId.get(e.dataset.commit!)!;
      e.classList.toggle('selected', i === selected);
      e.classList.toggle('compared', i === compareWith);
    }
  });
}

function kv(dl: HTMLElement, k: string, v: string | Node): void {
  dl.append(el('dt', undefined, k));
  const dd = el('dd');
  if (typeof v === 'string') dd.textContent = v;
  else dd.append(v);
  dl.append(dd);
}

function drawDetails(): void {
  details.replaceChildren();
  if (selected === null) {
    details.append(el('p', 'hint', 'No commits.'));
    return;
  }
  const c = data.commits[selected];
  details.append(el('h2', undefined, compareWith === null ? 'Commit' : 'Comparing'));
  if (compareWith !== null) {
    const p = el('p', 'pairline');
    p.append(el('span', 'id', short(data.commits[compareWith].id)), document.createTextNode(' → '), el('span', 'id', short(c.id)));
    details.append(p);
  }
  const dl = el('dl');
  kv(dl, 'id', c.id);
  kv(dl, 'message', c.message);
  if (c.refs.length) kv(dl, 'refs', c.refs.join(', '));
  kv(dl, 'author', c.author);
  kv(dl, 'time', `${when(c.time)} UTC`);
  if (c.meta.step !== undefined) kv(dl, 'step', String(c.meta.step));
  if (c.meta.epoch !== undefined) kv(dl, 'epoch', String(c.meta.epoch));
  for (const [k, v] of Object.entries(c.meta.metrics ?? {})) kv(dl, k, String(v));
  for (const [k, v] of Object.entries(c.meta.params ?? {})) kv(dl, `param ${k}`, String(v));
  if (c.code) kv(dl, 'code', `${c.code.commit ?? '?'}${c.code.branch ? ` (${c.code.branch})` : ''}${c.code.dirty ? ', with uncommitted changes' : ''}`);
  kv(dl, 'parents', c.parents.map(short).join(', ') || '(root)');
  if (c.pruned) kv(dl, 'pruned', `${c.pruned.time} (${c.pruned.reason}); metadata kept, data gone`);
  const recipe = (c.meta.extra as { merge?: unknown } | undefined)?.merge;
  if (recipe !== undefined) {
    const pre = el('pre', 'recipe', JSON.stringify(recipe, null, 2));
    kv(dl, 'merge recipe', pre);
  }
  kv(dl, 'storage', `${bytes(c.du.logical)} checkpoint · ${bytes(c.du.newUnique)} new after dedup · ${bytes(c.du.newChunks)} new in packs`);
  details.append(dl);
}

// ---- metrics
const metricsSec = el('section', 'card');
metricsSec.append(el('h2', undefined, 'Metrics'));
const chartsBox = el('div', 'charts');
metricsSec.append(chartsBox);
app.append(metricsSec);
const charts: Record<string, uPlot> = {};

function chartWidth(box: HTMLElement, cols: number): number {
  return Math.max(280, Math.floor((box.clientWidth || 900) / cols) - 24);
}

const metricCols = data.metrics.length > 1 ? 2 : 1;

function drawMetrics(): void {
  if (data.metrics.length === 0) {
    chartsBox.append(el('p', 'hint', 'No commit has metrics (ckpt commit --metric name=value).'));
    return;
  }
  for (const m of data.metrics) {
    const series = metricSeries(data, model, m);
    const box = el('div', 'chart');
    box.append(el('h3', undefined, m));
    const tip = el('div', 'tip', ' ');
    chartsBox.append(box);
    const opts: uPlot.Options = {
      width: chartWidth(chartsBox, metricCols),
      height: 220,
      legend: { show: true, live: false },
      cursor: { points: { size: 8 }, focus: { prox: 24 } },
      focus: { alpha: 0.35 },
      scales: { x: { time: false } },
      axes: [{ label: data.commits.some((c) => c.meta.step !== undefined) ? 'step' : 'commit', size: 40 }, { size: 56 }],
      series: [{}, ...series.lines.map((l) => ({ label: l.branch, stroke: branchColor.get(l.branch), width: 2, spanGaps: true, points: { show: true, size: 5 } }))],
      hooks: {
        setCursor: [
          (u) => {
            const idx = u.cursor.idx;
            if (idx === null || idx === undefined) return;
            const parts: string[] = [];
            series.lines.forEach((l) => {
              const ci = l.commits[idx];
              if (ci === null) return;
              const c = data.commits[ci];
              parts.push(`${l.branch} ${short(c.id)} ${m}=${fmt(l.ys[idx])} — ${firstLine(c.message)}`);
            });
            tip.textContent = parts.length ? `x=${series.xs[idx]}: ${parts.join(' · ')}` : ' ';
          },
        ],
      },
    };
    const u = new uPlot(opts, [series.xs, ...series.lines.map((l) => l.ys)] as uPlot.AlignedData, box);
    box.append(tip);
    u.over.addEventListener('click', () => {
      const idx = u.cursor.idx;
      if (idx === null || idx === undefined) return;
      // the line nearest the pointer at that x
      const top = u.cursor.top ?? 0;
      let best: number | null = null;
      let dist = Infinity;
      series.lines.forEach((l) => {
        const ci = l.commits[idx];
        const v = l.ys[idx];
        if (ci === null || v === null) return;
        const d = Math.abs(u.valToPos(v, 'y') - top);
        if (d < dist) (dist = d), (best = ci);
      });
      if (best !== null) select(best);
    });
    charts[m] = u;
  }
}

// ---- heatmap
const heatSec = el('section', 'card');
heatSec.append(el('h2', undefined, 'Layer change'));
const heatExplain = el('p', 'hint');
heatExplain.textContent =
  'Each cell: how much a module moved from the commit before, sqrt(Σ‖B−A‖²) / sqrt(Σ‖A‖²) over its changed tensors — the relChange of ckpt diff’s module summary, computed by diff when this page was written. ' +
  'A cell with a white corner is a lower bound from the chunks’ stored sums of squares (a side was pruned, or the page was written with --no-read). Click a cell for its tensors’ diff rows.';
heatSec.append(heatExplain);
const controls = el('div', 'controls');
const branchSel = el('select');
const depthSel = el('select');
const lbl1 = el('label', undefined, 'branch ');
lbl1.append(branchSel);
const lbl2 = el('label', undefined, 'module depth ');
lbl2.append(depthSel);
controls.append(lbl1, lbl2);
const legend = el('div', 'legend');
controls.append(legend);
heatSec.append(controls);
const heatWrap = el('div', 'heatwrap');
const canvas = el('canvas', 'heat');
heatWrap.append(canvas);
heatSec.append(heatWrap);
const heatTip = el('div', 'tip', ' ');
heatSec.append(heatTip);
const cellBox = el('div', 'cell');
heatSec.append(cellBox);
app.append(heatSec);

for (const b of data.branches) {
  const o = el('option', undefined, b.name);
  o.value = b.name;
  branchSel.append(o);
}
const pairOpt = el('option', undefined, 'selected pair (shift-click two commits)');
pairOpt.value = '\0pair';
branchSel.append(pairOpt);
const current = data.branches.find((b) => b.current) ?? data.branches[0];
if (data.selected) branchSel.value = '\0pair';
else if (current) branchSel.value = current.name;
for (let d = 1; d <= model.maxDepth(); d++) {
  const o = el('option', undefined, String(d));
  o.value = String(d);
  depthSel.append(o);
}
depthSel.value = String(Math.min(data.groupDepth, model.maxDepth()));

interface HeatState {
  modules: string[];
  columns: PairChanges[];
  depth: number;
}
let heat: HeatState = { modules: [], columns: [], depth: 1 };
let heatCell: { col: number; row: number } | null = null;
const LABEL_W = 190;
const HEAD_H = 22;

function heatColumns(depth: number): PairChanges[] {
  if (branchSel.value === '\0pair') {
    if (selected === null || compareWith === null) return [];
    return [model.changes(compareWith, selected, depth)];
  }
  const chain = model.chain(branchSel.value);
  const cols: PairChanges[] = [];
  for (let k = 1; k < chain.length; k++) cols.push(model.changes(chain[k - 1], chain[k], depth));
  return cols;
}

function drawHeat(): void {
  const depth = Number(depthSel.value);
  heat = { modules: model.modules(depth), columns: heatColumns(depth), depth };
  const { modules, columns } = heat;
  const [lo, hi] = heatRange(columns.flatMap((c) => c.modules.map((m) => m.rel)));
  drawLegend(lo, hi);
  const avail = Math.max(300, (heatWrap.clientWidth || 900) - LABEL_W - 8);
  const cw = columns.length ? Math.max(3, Math.min(48, Math.floor(avail / columns.length))) : 36;
  const ch = modules.length > 60 ? 12 : modules.length > 24 ? 18 : 22;
  const w = LABEL_W + cw * Math.max(1, columns.length) + 8;
  const h = HEAD_H + ch * modules.length + 4;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.ceil(w * dpr);
  canvas.height = Math.ceil(h * dpr);
  canvas.style.width = `${w}px`;
  canvas.style.height = `${h}px`;
  canvas.dataset.cw = String(cw);
  canvas.dataset.ch = String(ch);
  const g = canvas.getContext('2d')!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  g.font = '12px system-ui, sans-serif';
  g.textBaseline = 'middle';
  g.fillStyle = '#333';
  modules.forEach((m, r) => {
    const label = m === '' ? '(top level)' : m;
    let t = label;
    while (t.length > 3 && g.measureText(t).width > LABEL_W - 10) t = t.slice(0, -2);
    g.fillText(t === label ? t : `${t}…`, 4, HEAD_H + r * ch + ch / 2);
  });
  // column heads: the step (or position) of the newer commit, as room allows
  const every = Math.max(1, Math.ceil(44 / cw));
  g.fillStyle = '#666';
  g.font = '11px system-ui, sans-serif';
  columns.forEach((c, k) => {
    if (k % every !== 0) return;
    const s = data.commits[c.b].meta.step;
    g.fillText(s !== undefined ? String(s) : short(data.commits[c.b].id).slice(0, 6), LABEL_W + k * cw, 10);
  });
  columns.forEach((c, k) => {
    c.modules.forEach((mc, r) => {
      const x = LABEL_W + k * cw;
      const y = HEAD_H + r * ch;
      g.fillStyle = mc.changed === 0 && mc.rel === null ? '#f4f4f6' : heatColor(mc.rel, lo, hi);
      g.fillRect(x, y, cw - 1, ch - 1);
      if (c.basis !== 'exact' && mc.changed > 0 && cw >= 8) {
        g.fillStyle = 'rgba(255,255,255,0.85)';
        g.beginPath();
        g.moveTo(x + cw - 1, y);
        g.lineTo(x + cw - 1, y + Math.min(7, ch - 1));
        g.lineTo(x + cw - 1 - Math.min(7, ch - 1), y);
        g.fill();
      }
    });
  });
  if (heatCell && heatCell.col < columns.length && heatCell.row < modules.length) {
    g.strokeStyle = '#000';
    g.lineWidth = 2;
    g.strokeRect(LABEL_W + heatCell.col * cw, HEAD_H + heatCell.row * ch, cw - 1, ch - 1);
  }
  if (columns.length === 0) {
    g.fillStyle = '#666';
    g.fillText(branchSel.value === '\0pair' ? 'Shift-click two commits in the history to compare them.' : 'This branch has one commit: nothing to compare.', LABEL_W, HEAD_H + 10);
  }
  drawCell();
}

function cellAt(ev: MouseEvent): { col: number; row: number } | null {
  const rect = canvas.getBoundingClientRect();
  const cw = Number(canvas.dataset.cw);
  const ch = Number(canvas.dataset.ch);
  const col = Math.floor((ev.clientX - rect.left - LABEL_W) / cw);
  const row = Math.floor((ev.clientY - rect.top - HEAD_H) / ch);
  if (col < 0 || row < 0 || col >= heat.columns.length || row >= heat.modules.length) return null;
  return { col, row };
}

function describe(c: PairChanges, row: number): string {
  const mc = c.modules[row];
  const b = data.commits[c.b];
  const a = data.commits[c.a];
  const rel = mc.rel === null ? (mc.changed ? 'from 0' : 'unchanged') : `${c.basis === 'exact' ? '' : '≥ '}${fmt(mc.rel)}`;
  return `${heat.modules[row] || '(top level)'}  ${short(a.id)} → ${short(b.id)}${b.meta.step !== undefined ? ` (step ${b.meta.step})` : ''}: ${rel}, ${mc.changed} changed tensor(s)${c.basis === 'exact' ? '' : ` — bound: ${c.note ?? 'not in the page; run ckpt view A B for the exact figure'}`}`;
}

canvas.addEventListener('mousemove', (ev) => {
  const at = cellAt(ev);
  heatTip.textContent = at ? describe(heat.columns[at.col], at.row) : ' ';
});
canvas.addEventListener('click', (ev) => {
  const at = cellAt(ev);
  if (!at) return;
  heatCell = at;
  const c = heat.columns[at.col];
  if (branchSel.value !== '\0pair') {
    selected = c.b;
    compareWith = null;
    for (const f of listeners) if (f !== redrawHeat) f();
  }
  drawHeat();
});

function td(tr: HTMLElement, text: string, cls?: string): void {
  tr.append(el('td', cls, text));
}

function drawCell(): void {
  cellBox.replaceChildren();
  if (!heatCell || heatCell.col >= heat.columns.length || heatCell.row >= heat.modules.length) return;
  const c = heat.columns[heatCell.col];
  cellBox.append(el('h3', undefined, describe(c, heatCell.row)));
  const rows: TensorChange[] = model.moduleTensors(c, heat.modules[heatCell.row], heat.depth);
  if (rows.length === 0) {
    cellBox.append(el('p', 'hint', 'No tensor of this module changed.'));
    return;
  }
  const table = el('table', 'rows-table');
  const head = el('tr');
  const exact = c.basis === 'exact';
  for (const h of exact ? ['tensor', 'elements changed', 'max |d|', 'rel L2', 'cosine', 'new NaN', 'new Inf'] : ['tensor', 'rel L2 (lower bound)']) head.append(el('th', undefined, h));
  table.append(head);
  for (const t of rows) {
    const tr = el('tr');
    td(tr, t.name, 'name');
    const s = t.stats;
    if (exact && s?.kind === 'numeric') {
      td(tr, `${s.changed} (${(s.changedFraction * 100).toFixed(2)}%)`);
      td(tr, fmt(s.maxAbsDelta));
      td(tr, s.relL2 === null ? 'from 0' : fmt(s.relL2));
      td(tr, s.cosine === null ? '–' : s.cosine === 1 ? '1' : s.cosine.toFixed(7));
      td(tr, String(s.nanAppeared), s.nanAppeared ? 'bad' : undefined);
      td(tr, String(s.infAppeared), s.infAppeared ? 'bad' : undefined);
    } else if (exact && s) {
      td(tr, `bytes ${(s.changedFraction * 100).toFixed(2)}%`);
      for (let k = 0; k < 5; k++) td(tr, '–');
    } else {
      td(tr, t.relL2 === null ? 'from 0' : `≥ ${fmt(t.relL2)}`);
    }
    table.append(tr);
  }
  cellBox.append(table);
}

function drawLegend(lo: number, hi: number): void {
  const bar = el('canvas', 'legendbar');
  bar.width = 160;
  bar.height = 10;
  const g = bar.getContext('2d')!;
  for (let x = 0; x < 160; x++) {
    g.fillStyle = heatColor(lo * (hi / lo) ** (x / 159), lo, hi);
    g.fillRect(x, 0, 1, 10);
  }
  legend.replaceChildren(el('span', undefined, `relative change ≤${fmt(lo)} `), bar, el('span', undefined, ` ${fmt(hi)}`), el('span', 'swatch-zero'), el('span', undefined, 'unchanged'));
}

const redrawHeat = () => {
  if (branchSel.value === '\0pair' || heatCell === null) drawHeat();
};
branchSel.addEventListener('change', () => {
  heatCell = null;
  drawHeat();
});
depthSel.addEventListener('change', drawHeat);

// ---- storage
const storeSec = el('section', 'card');
storeSec.append(el('h2', undefined, 'Storage'));
const duLine = el('p', 'hint');
if (data.du) {
  const d = data.du;
  duLine.textContent = `The commits shown: ${bytes(d.logical)} of checkpoints → ${bytes(d.unique)} after dedup (${d.dedupRatio.toFixed(2)}x) → ${bytes(d.chunks)} in packs (${d.compressionRatio.toFixed(2)}x)${d.prunedCommits ? `, ${d.prunedCommits} pruned commit(s) not counted` : ''}. Per commit: its checkpoint size, and what it added after dedup and after compression.`;
}
storeSec.append(duLine);
const storeBox = el('div', 'chart');
storeSec.append(storeBox);
const storeTip = el('div', 'tip', ' ');
storeSec.append(storeTip);
app.append(storeSec);
let storeChart: uPlot | undefined;

const PRUNED_FILLS = ['#e4e4e4', '#c4c4c4', '#9a9a9a'];
const storeWidth = () => Math.max(320, (storeSec.clientWidth || 900) - 32);

function drawStorage(): void {
  const n = data.commits.length;
  if (n === 0) return;
  const xs = data.commits.map((_, i) => i);
  const pos = (v: number) => v;
  // a pruned commit's bars in greys: its data is gone
  const series = [
    { label: 'checkpoint', values: data.commits.map((c) => pos(c.du.logical)), fill: '#c6dbef', grey: PRUNED_FILLS[0], size: 0.9 },
    { label: 'new after dedup', values: data.commits.map((c) => pos(c.du.newUnique)), fill: '#6baed6', grey: PRUNED_FILLS[1], size: 0.6 },
    { label: 'new after compression', values: data.commits.map((c) => pos(c.du.newChunks)), fill: '#08519c', grey: PRUNED_FILLS[2], size: 0.3 },
  ];
  const fills = series.map((s) => data.commits.map((c) => (c.pruned ? s.grey : s.fill)));
  const bars = uPlot.paths.bars!;
  const opts: uPlot.Options = {
    width: storeWidth(),
    height: 220,
    scales: { x: { time: false, range: [-0.5, n - 0.5] }, y: { range: (_u, _min, max) => [0, max * 1.05] } },
    axes: [
      { label: 'commit (oldest left)', size: 40, grid: { show: false }, values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) && data.commits[t] ? (data.commits[t].meta.step !== undefined ? String(data.commits[t].meta.step) : data.commits[t].id.slice(0, 6)) : '')) },
      { size: 70, values: (_u, ticks) => ticks.map((t) => bytes(t)) },
    ],
    legend: { show: true, live: false },
    cursor: { points: { show: false } },
    series: [
      {},
      ...series.map((s, k) => ({
        label: s.label,
        fill: s.fill,
        stroke: s.fill,
        width: 0,
        paths: bars({ size: [s.size, Math.round(64 * s.size)], disp: { fill: { unit: 3 /* colours */, values: () => fills[k] } } }),
        points: { show: false },
      })),
    ],
    hooks: {
      setCursor: [
        (u) => {
          const i = u.cursor.idx;
          if (i === null || i === undefined) return;
          const c = data.commits[i];
          storeTip.textContent = `${short(c.id)} ${firstLine(c.message)}: checkpoint ${bytes(c.du.logical)}, unique ${bytes(c.du.unique)}, in packs ${bytes(c.du.chunks)}; new after dedup ${bytes(c.du.newUnique)}, new after compression ${bytes(c.du.newChunks)}`;
        },
      ],
    },
  };
  storeChart = new uPlot(opts, [xs, ...series.map((s) => s.values)] as uPlot.AlignedData, storeBox);
  storeChart.over.addEventListener('click', () => {
    const i = storeChart!.cursor.idx;
    if (i !== null && i !== undefined) select(i);
  });
}

drawGraph();
drawMetrics();
drawStorage();
listeners.push(drawDetails, redrawHeat);
for (const f of listeners) f();
drawHeat();

// a new window width: the charts and the heatmap are drawn to it (once the resizing settles)
let resizing: ReturnType<typeof setTimeout> | undefined;
let drawnWidth = window.innerWidth;
window.addEventListener('resize', () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => {
    if (window.innerWidth === drawnWidth) return;
    drawnWidth = window.innerWidth;
    for (const u of Object.values(charts)) u.setSize({ width: chartWidth(chartsBox, metricCols), height: u.height });
    storeChart?.setSize({ width: storeWidth(), height: storeChart.height });
    drawHeat();
  }, 80);
});

/** For tests and the curious: what the page drew, from its own state. */
(window as unknown as { ckptView: unknown }).ckptView = {
  model,
  graphCommits: () => [...graphBox.querySelectorAll<HTMLElement>('[data-commit]')].map((e) => e.dataset.commit),
  widths: () => ({ charts: Object.values(charts).map((u) => u.width), storage: storeChart?.width, heat: canvas.getBoundingClientRect().width, window: window.innerWidth, drawnFor: drawnWidth }),
  /** The colour of commit `i`'s checkpoint bar as drawn: [r, g, b]. */
  storageBar: (i: number) => {
    const u = storeChart!;
    const dpr = window.devicePixelRatio || 1;
    const col = Math.abs(u.valToPos(1, 'x') - u.valToPos(0, 'x'));
    // between the checkpoint bar's edge and the narrower bars drawn over its middle
    const x = u.valToPos(i, 'x', true) + dpr * 0.5 * (Math.min(0.9 * col, 58) / 2 + Math.min(0.6 * col, 38) / 2);
    const y = u.valToPos(data.commits[i].du.logical / 2, 'y', true);
    return [...u.ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)];
  },
  charts: () => Object.fromEntries(Object.entries(charts).map(([m, u]) => [m, { labels: u.series.slice(1).map((s) => s.label), data: u.data.map((a) => [...a]) }])),
  heat: () => ({
    depth: heat.depth,
    modules: heat.modules,
    columns: heat.columns.map((c) => ({ a: data.commits[c.a].id, b: data.commits[c.b].id, basis: c.basis, rel: c.modules.map((m) => m.rel) })),
  }),
  setHeat: (branch: string, depth: number) => {
    branchSel.value = branch;
    depthSel.value = String(Math.max(1, Math.min(depth, model.maxDepth())));
    heatCell = null;
    drawHeat();
  },
  clickCell: (col: number, row: number) => {
    heatCell = { col, row };
    drawHeat();
    return cellBox.textContent;
  },
  select: (a: string, b?: string) => {
    select(model.byId.get(a)!);
    if (b !== undefined) select(model.byId.get(b)!, true);
  },
};
document.body.dataset.ready = '1';
