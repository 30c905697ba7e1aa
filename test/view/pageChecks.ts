/**
 * What every view page must show, checked in Chromium against the store it was written for:
 * nothing requested, nothing logged as an error, every commit in the graph, every metric point
 * on its curve, and heatmap cells equal to `ckpt diff --json`'s relative changes.
 */
import { expect } from 'vitest';
import type { Tab } from '../../bench/chromium.js';
import { diff } from '../../src/repo/diff.js';
import type { Repository } from '../../src/repo/repository.js';
import { ckptJson } from '../e2e/helpers.js';

export interface HeatDump {
  depth: number;
  modules: string[];
  columns: { a: string; b: string; basis: string; rel: (number | null)[] }[];
}

export function expectClean(tab: Tab): void {
  expect(tab.log.errors).toEqual([]);
  expect(tab.log.requests).toEqual([]);
  expect(tab.log.console.filter(([t]) => t === 'error' || t === 'warning')).toEqual([]);
}

export async function expectEveryCommit(tab: Tab, ids: string[]): Promise<void> {
  const shown = await tab.evaluate<string[]>('ckptView.graphCommits()');
  expect([...shown].sort()).toEqual([...ids].sort());
}

/** Every (commit, metric) pair is a point of some line at the commit's step. */
export async function expectEveryMetricPoint(tab: Tab, commits: { id: string; step?: number; metrics?: Record<string, number> }[]): Promise<number> {
  const charts = await tab.evaluate<Record<string, { labels: string[]; data: (number | null)[][] }>>('ckptView.charts()');
  let points = 0;
  for (const c of commits) {
    for (const [m, v] of Object.entries(c.metrics ?? {})) {
      const chart = charts[m];
      expect(chart, `chart for ${m}`).toBeDefined();
      const xi = chart.data[0].indexOf(c.step!);
      expect(xi, `x=${c.step} on ${m}`).toBeGreaterThanOrEqual(0);
      const ys = chart.data.slice(1).map((s) => s[xi]);
      expect(ys, `${m} of ${c.id.slice(0, 8)} at step ${c.step}`).toContain(v);
      points++;
    }
  }
  return points;
}

export function relClose(page: number | null, want: number | null, where: string): void {
  if (want === null || page === null) {
    expect(page, where).toBe(want);
    return;
  }
  const scale = Math.max(Math.abs(want), 1e-300);
  expect(Math.abs(page - want) / scale, `${where}: page ${page} vs diff ${want}`).toBeLessThanOrEqual(1e-9);
}

/**
 * For each branch and depth, the page's exact cells against diff's groups: through the CLI's
 * `ckpt diff --json` at `cliDepth`, through the library (the same code) at the other depths.
 * Returns how many cells were compared.
 */
export async function expectHeatEqualsDiff(tab: Tab, repo: Repository, branches: string[], depths: number[], cliDepth: number): Promise<{ cells: number; exactColumns: number; boundColumns: number }> {
  let cells = 0;
  let exactColumns = 0;
  let boundColumns = 0;
  for (const branch of branches) {
    for (const depth of depths) {
      await tab.evaluate(`ckptView.setHeat(${JSON.stringify(branch)}, ${depth})`);
      const heat = await tab.evaluate<HeatDump>('ckptView.heat()');
      expect(heat.depth).toBe(depth);
      for (const col of heat.columns) {
        if (col.basis !== 'exact') {
          boundColumns++;
          continue;
        }
        exactColumns++;
        const groups =
          depth === cliDepth
            ? (await ckptJson<{ summary: { groups: { prefix: string; relChange: number | null }[] } }>(repo.root, 'diff', col.a, col.b, '--json', '--group-depth', String(depth))).summary.groups
            : (await diff(repo, col.a, col.b, { groupDepth: depth })).summary.groups;
        for (const g of groups) {
          const row = heat.modules.indexOf(g.prefix);
          expect(row, `module ${g.prefix} in the heatmap`).toBeGreaterThanOrEqual(0);
          // diff leaves relChange null for a module with no changed tensor: the page's cell is empty (null) too
          relClose(col.rel[row], g.relChange, `${branch} depth ${depth} ${col.a.slice(0, 8)}→${col.b.slice(0, 8)} ${g.prefix}`);
          cells++;
        }
      }
    }
  }
  return { cells, exactColumns, boundColumns };
}
