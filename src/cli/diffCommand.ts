import type { CommandModule } from 'yargs';
import { UsageError, type CkptError } from '../core/errors.js';
import type { TensorStats } from '../diff/tensorDeltaStats.js';
import type { TensorLoc } from '../diff/stateDiff.js';
import { diff, type DiffReport, type DiffSide } from '../repo/diff.js';
import type { Repository } from '../repo/repository.js';
import { cwdOf, openRepoAt, output, setExitCode, type Args } from './context.js';
import { humanBytes, shortId, table, type Output, type Progress } from './output.js';

type DiffArgs = Args<{
  a: string;
  b?: string;
  tensors?: string[];
  stats: boolean;
  top: number;
  groupDepth: number;
  exitCode?: boolean;
}>;

const RED = 31;
const GREEN = 32;
const YELLOW = 33;
const CYAN = 36;
const BOLD = 1;

/** Four significant digits, in exponent form where that is shorter to read. */
function num(x: number | null | undefined): string {
  if (x === null || x === undefined) return '-';
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e6) return String(Number(x.toPrecision(4)));
  return x.toExponential(2);
}

/** Cosine sits near 1 for most updates: what matters is how far below 1, so it keeps more digits. */
function cosine(x: number | null): string {
  return x === null ? '-' : x === 1 ? '1' : x.toFixed(7);
}

/** relL2 is null when A is all zeros and B is not: a change from zero, of no finite relative size. */
function relL2(x: number | null): string {
  return x === null ? 'from 0' : num(x);
}

function pct(f: number): string {
  if (f === 0) return '0%';
  if (f < 0.0001) return '<0.01%';
  return `${(f * 100).toFixed(f >= 0.9999 && f < 1 ? 3 : 2)}%`;
}

const shape = (s: number[]) => `[${s.join(', ')}]`;

function sideLabel(s: DiffSide): string {
  if (s.kind === 'commit') return `${s.rev} (commit ${shortId(s.id)})`;
  if (s.kind === 'files') return `${s.path} (not committed)`;
  return 'the work tree';
}

function scalar(v: string | number | boolean | null): string {
  if (v === null) return '(none)';
  return typeof v === 'number' ? num(v) : String(v);
}

function metaLines(out: Output, r: DiffReport): void {
  if (r.meta.length === 0) return;
  out.line(out.paint(BOLD, 'metadata'));
  const rows = r.meta.map((m) => {
    const delta = m.delta === undefined ? '' : `(${m.delta >= 0 ? '+' : ''}${num(m.delta)})`;
    return [`  ${m.field}`, scalar(m.a), '->', scalar(m.b), delta];
  });
  for (const l of table(rows)) out.line(l);
  out.line();
}

function fileLines(out: Output, r: DiffReport): void {
  const f = r.files;
  if (f.added.length + f.removed.length + f.changed.length === 0) return;
  out.line(out.paint(BOLD, 'files'));
  const rows = [
    ...f.changed.map((c) => [out.paint(YELLOW, '  modified'), c.path, `${humanBytes(c.a.size)} -> ${humanBytes(c.b.size)}`]),
    ...f.added.map((c) => [out.paint(GREEN, '  added'), c.path, humanBytes(c.size)]),
    ...f.removed.map((c) => [out.paint(RED, '  removed'), c.path, humanBytes(c.size)]),
  ];
  for (const l of table(rows)) out.line(l);
  if (f.unchanged) out.line(`  ${f.unchanged} file(s) unchanged`);
  out.line();
}

function structureLines(out: Output, r: DiffReport): void {
  const t = r.tensors;
  const counts = [
    [t.changed.length, 'changed'],
    [t.added.length, 'added'],
    [t.removed.length, 'removed'],
    [t.renamed.length, 'renamed'],
    [t.dtypeChanged.length, 'dtype changed'],
    [t.shapeChanged.length, 'shape changed'],
    [t.unchanged.length, 'unchanged'],
  ] as const;
  out.line(out.paint(BOLD, `tensors: ${counts.filter(([n]) => n > 0).map(([n, w]) => `${n} ${w}`).join(', ') || 'none'}`));
  const loc = (x: TensorLoc) => [x.dtype, shape(x.shape), humanBytes(x.bytes)];
  const rows: string[][] = [
    ...t.added.map((x) => [out.paint(GREEN, '  added'), x.name, ...loc(x)]),
    ...t.removed.map((x) => [out.paint(RED, '  removed'), x.name, ...loc(x)]),
    ...t.renamed.map((x) => [out.paint(CYAN, '  renamed'), `${x.from.name} -> ${x.to.name}`, ...loc(x.to)]),
    ...[...t.dtypeChanged, ...t.shapeChanged].map((x) => [
      out.paint(CYAN, x.a.dtype !== x.b.dtype ? '  dtype' : '  shape'),
      x.name,
      x.a.dtype === x.b.dtype ? x.b.dtype : `${x.a.dtype} -> ${x.b.dtype}`,
      `${shape(x.a.shape)} -> ${shape(x.b.shape)}`,
      x.sameBytes ? 'same bytes' : `${humanBytes(x.a.bytes)} -> ${humanBytes(x.b.bytes)}`,
    ]),
  ];
  for (const l of table(rows)) out.line(l);
  out.line();
}

function statCells(out: Output, s: TensorStats | undefined): string[] {
  if (!s) return ['', '', '', '', '', '', ''];
  if (s.kind === 'bytes') return [`${pct(s.changedFraction)} of bytes`, '', '', '', '', '', ''];
  const bad = s.nanAppeared + s.infAppeared;
  return [
    `${s.changed} (${pct(s.changedFraction)})`,
    num(s.maxAbsDelta),
    num(s.meanAbsDelta),
    num(s.l2Delta),
    relL2(s.relL2),
    cosine(s.cosine),
    bad ? out.paint(RED, `${s.nanAppeared}/${s.infAppeared}`) : '0/0',
  ];
}

function changedLines(out: Output, r: DiffReport, withStats: boolean): void {
  const changed = r.tensors.changed;
  if (changed.length === 0) return;
  out.line(out.paint(BOLD, 'changed tensors'));
  const head = ['  name', 'dtype', 'shape', 'size', 'chunks read'];
  if (withStats) head.push('elements changed', 'max|d|', 'mean|d|', 'L2(d)', 'rel L2', 'cosine', 'new NaN/Inf');
  const rows = changed.map((t) => {
    const read = t.changedChunks === null ? 'all' : `${t.changedChunks.length}/${t.chunks}`;
    const row = [`  ${out.paint(YELLOW, t.name)}`, t.dtype, shape(t.shape), humanBytes(t.bytes), read];
    if (withStats) row.push(...statCells(out, t.stats));
    return row;
  });
  for (const l of table([head, ...rows], [3, 4, 5, 6, 7, 8, 9, 10, 11])) out.line(l);
  out.line();
}

function summaryLines(out: Output, r: DiffReport, withStats: boolean): void {
  const s = r.summary;
  if (s.groups.length > 1) {
    out.line(out.paint(BOLD, `modules (group depth ${s.groupDepth})`));
    const head = ['  prefix', 'tensors', 'changed', 'restructured', 'params', 'params changed'];
    if (withStats) head.push('rel change');
    const rows = [...s.groups, s.total].map((g) => {
      const frac = g.params ? g.paramsChanged / g.params : 0;
      const row = [
        `  ${g === s.total ? out.paint(BOLD, 'total') : g.prefix || '(no prefix)'}`,
        String(g.tensors),
        String(g.changed),
        String(g.restructured),
        String(g.params),
        `${g.paramsChanged} (${pct(frac)})`,
      ];
      if (withStats) row.push(num(g.relChange));
      return row;
    });
    for (const l of table([head, ...rows], [1, 2, 3, 4, 5, 6])) out.line(l);
    out.line();
  }
  if (withStats && s.top.length > 0) {
    out.line(out.paint(BOLD, `most changed (top ${s.top.length} by relative L2)`));
    const rows = s.top.map((t) => [`  ${t.name}`, relL2(t.relL2), cosine(t.cosine), pct(t.changedFraction), num(t.maxAbsDelta)]);
    for (const l of table([['  name', 'rel L2', 'cosine', 'changed', 'max|d|'], ...rows], [1, 2, 3, 4])) out.line(l);
    out.line();
  }
}

function render(out: Output, r: DiffReport, withStats: boolean): void {
  out.line(`A  ${sideLabel(r.a)}`);
  out.line(`B  ${sideLabel(r.b)}`);
  if (r.filter) out.line(`tensors matching ${r.filter.join(', ')}`);
  out.line();
  if (r.identical) {
    out.line(`no changes (${r.tensors.unchanged.length} tensors compared)`);
    return;
  }
  metaLines(out, r);
  fileLines(out, r);
  structureLines(out, r);
  changedLines(out, r, withStats);
  summaryLines(out, r, withStats);
  const chunks = r.tensors.changed.reduce((n, t) => n + t.chunks, 0);
  if (withStats) out.line(`read ${r.read.chunks} chunks (${humanBytes(r.read.bytes)}) for the statistics; changed tensors hold ${chunks} chunks per side`);
}

async function openOptional(argv: DiffArgs, cwd: string): Promise<Repository | undefined> {
  try {
    return await openRepoAt(argv, cwd);
  } catch (e) {
    if ((e as CkptError).code === 'E_NOT_A_REPO') return undefined;
    throw e;
  }
}

export const diffCommand: CommandModule<object, DiffArgs> = {
  command: 'diff <a> [b]',
  describe: 'compare two checkpoints (revisions, or files not committed): structure, metadata, and how much each tensor changed',
  builder: (y) =>
    y
      .positional('a', { type: 'string', describe: 'revision or path; alone: it against the work tree (a path alone: HEAD against it)' })
      .positional('b', { type: 'string', describe: 'revision or path' })
      .option('tensors', { type: 'string', array: true, describe: 'compare only tensors matching these globs' })
      .option('stats', { type: 'boolean', default: true, describe: 'element statistics of changed tensors (--no-stats: structure only, reads no tensor data)' })
      .option('top', { type: 'number', default: 10, describe: 'list the K most changed tensors' })
      .option('group-depth', { type: 'number', default: 2, describe: 'name components in a module prefix' })
      .option('exit-code', { type: 'boolean', describe: 'exit 1 when anything differs, 0 when nothing does' }) as never,
  handler: async (argv) => {
    for (const [flag, x] of [['top', argv.top], ['group-depth', argv.groupDepth]] as const) {
      if (!Number.isInteger(x) || x < 0) throw new UsageError(`--${flag} expects a whole number >= 0, got ${x}`);
    }
    const out = output(argv);
    const cwd = cwdOf(argv);
    const repo = await openOptional(argv, cwd);
    const bars: Partial<Record<'hash' | 'read', Progress>> = {};
    let r: DiffReport;
    try {
      r = await diff(repo, argv.a, argv.b, {
        cwd,
        tensors: argv.tensors,
        stats: argv.stats,
        top: argv.top,
        groupDepth: argv.groupDepth,
        onProgress: (phase, done, total) => {
          if (!bars[phase]) {
            for (const b of Object.values(bars)) b.stop();
            bars[phase] = out.progress(phase === 'hash' ? 'hashing files' : 'reading changed chunks');
          }
          bars[phase]!.update(done, total);
        },
      });
    } finally {
      for (const b of Object.values(bars)) b.stop();
    }
    out.result(r);
    render(out, r, argv.stats);
    // As `git diff --exit-code`: a difference is an outcome, not an error.
    if (argv.exitCode && !r.identical) setExitCode(argv, 1);
  },
};
