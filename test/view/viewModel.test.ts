/**
 * The view's data model and the page's pure functions, apart from the browser: the document's
 * shape against the `--json` commands, the heatmap's figures against diff, the bounds below the
 * exact figures, the graph layout, the curves, and the escaping of the embedded JSON.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { diff } from '../../src/repo/diff.js';
import { diskUsage } from '../../src/repo/diskUsage.js';
import { log } from '../../src/repo/history.js';
import { renderViewHtml, scriptSafeJson } from '../../src/view/htmlWriter.js';
import { decodeFloat32, heatColor, heatRange, layoutGraph, metricSeries, Model, owners } from '../../src/view/page/model.js';
import { buildViewData, encodeFloat32 } from '../../src/view/viewData.js';
import type { ViewData } from '../../src/view/viewTypes.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';
import { makeHostileStore } from './hostileStore.js';
import { makeRunStore, type RunStore } from './runStore.js';

let store: RunStore;
let data: ViewData;

beforeAll(async () => {
  store = await makeRunStore(await tempDir('ckpt-view-model-'));
  data = await buildViewData(store.repo);
});
afterAll(cleanupTempDirs);

describe('the embedded document', () => {
  test('JSON inside a script element: no < > & U+2028 U+2029, and it parses back to the same value', () => {
    const value = { s: '</script><script>alert(1)</script><!-- & \u2028\u2029 "q" \'s\' ünï 名前 🙂', n: [1.5, 0, 1e-300], nested: { '<k>': '&amp;' } };
    const text = scriptSafeJson(value);
    expect(text).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(text)).toEqual(value);
  });

  test('the page holds the document and nothing of it as markup', async () => {
    const { html, csp } = renderViewHtml(data);
    expect(html.match(/<script/g)!.length).toBe(2);
    const json = /<script type="application\/json" id="ckpt-data">([^<]*)<\/script>/.exec(html)![1];
    expect(JSON.parse(json)).toEqual(JSON.parse(JSON.stringify(data)));
    expect(csp).toContain("connect-src 'none'");
    // outside the two script elements: no element that could fetch anything
    const markup = html.replace(/<script[^>]*>[^]*?<\/script>/g, '');
    expect(markup).not.toMatch(/<(link|img|iframe|object|embed|video|audio|source)\b|\ssrc=|\shref=|url\(/i);
    for (const u of html.match(/https?:\/\/[^"'\s)]*/g) ?? []) expect(u).toBe('http://www.w3.org/2000/svg');
  });

  test('floats round-trip through base64', () => {
    const xs = [0, 1.5, -2.25, NaN, 3.4e38, 1e-40];
    const back = [...decodeFloat32(encodeFloat32(xs))];
    expect(back.map((x) => (Number.isNaN(x) ? 'NaN' : x))).toEqual(xs.map((x) => (Number.isNaN(x) ? 'NaN' : Math.fround(x))));
  });

  test('commits have `ckpt log --json`’s shape, du is `ckpt du --json`', async () => {
    expect(data.commits.length).toBe(10);
    const byId = new Map(data.commits.map((c) => [c.id, c]));
    for (const e of await log(store.repo, 'main')) {
      const c = byId.get(e.id)!;
      const { du: _du, pruned, ...rest } = c;
      expect(rest).toEqual({ id: e.id, refs: e.refs, ...e.commit });
      expect(Boolean(pruned)).toBe(store.pruned.includes(e.id));
    }
    // du counts every commit it reaches (the reflog's too); the page, those it shows
    expect(data.du.commits).toBe(10 - store.pruned.length);
    expect(data.du.prunedCommits).toBe(store.pruned.length);
    expect(data.du.prunedCommits).toBe((await diskUsage(store.repo)).prunedCommits);
    // parents before children
    const at = new Map(data.commits.map((c, i) => [c.id, i]));
    for (const [i, c] of data.commits.entries()) for (const p of c.parents) expect(at.get(p)!).toBeLessThan(i);
    expect(data.pairs.length).toBe(10);
    expect(data.pairs.filter((p) => p.exact).length).toBe(8);
    for (const p of data.pairs.filter((x) => !x.exact)) expect(p.note).toMatch(/pruned/);
  });

  test('per-commit storage adds up to du when nothing is pruned', async () => {
    const repo = await makeHostileStore(await tempDir('ckpt-view-du-'));
    const d = await buildViewData(repo);
    const du = await diskUsage(repo);
    const total = (k: 'logical' | 'newUnique' | 'newChunks') => d.commits.reduce((n, c) => n + c.du[k], 0);
    expect(total('logical')).toBe(du.logical);
    expect(total('newUnique')).toBe(du.unique);
    expect(total('newChunks')).toBe(du.chunks);
    const { commits, logical, unique, chunks, dedupRatio, compressionRatio, prunedCommits, prunedLogical } = du;
    expect(d.du).toEqual({ commits, logical, unique, chunks, dedupRatio, compressionRatio, prunedCommits, prunedLogical });
    for (const c of d.commits) expect(c.du.newUnique).toBeLessThanOrEqual(c.du.unique);
  });
});

describe('the heatmap', () => {
  test('exact cells are diff’s summary.groups[].relChange at every depth', async () => {
    const model = new Model(data);
    let compared = 0;
    for (const p of data.pairs.filter((x) => x.exact)) {
      for (let depth = 1; depth <= model.maxDepth(); depth++) {
        const ch = model.changes(p.a, p.b, depth);
        expect(ch.basis).toBe('exact');
        const d = await diff(store.repo, data.commits[p.a].id, data.commits[p.b].id, { groupDepth: depth });
        for (const g of d.summary.groups) {
          const m = ch.modules.find((x) => x.prefix === g.prefix)!;
          // the same sums in the same order: equal to the bit
          expect(m.rel).toBe(g.relChange);
          expect(m.changed).toBe(g.changed);
          compared++;
        }
      }
    }
    expect(compared).toBeGreaterThan(60);
  });

  test('bounds from sums of squares never exceed the exact figure', async () => {
    const exact = new Model(data);
    const bound = new Model(await buildViewData(store.repo, { read: false }));
    let nonzero = 0;
    for (const p of data.pairs.filter((x) => x.exact)) {
      for (let depth = 1; depth <= exact.maxDepth(); depth++) {
        const e = exact.changes(p.a, p.b, depth);
        const b = bound.changes(p.a, p.b, depth);
        expect(b.basis).toBe('chunk-bound');
        // no pair held: the tensors' norms alone, weaker still
        const far = new Model({ ...bound.data, pairs: [] }).changes(p.a, p.b, depth);
        expect(far.basis).toBe('norm-bound');
        e.modules.forEach((m, i) => {
          if (m.rel === null) return;
          expect(b.modules[i].rel!).toBeLessThanOrEqual(m.rel * (1 + 1e-6));
          expect(far.modules[i].rel ?? 0).toBeLessThanOrEqual(m.rel * (1 + 1e-6));
          expect(b.modules[i].changed).toBe(m.changed);
          if (b.modules[i].rel! > 0) nonzero++;
        });
      }
    }
    expect(nonzero).toBeGreaterThan(10);
  });

  test('colour scale: log over the data’s range, red for a change from zero, grey for none', () => {
    expect(heatRange([null, 0, 1e-5, 1e-1])).toEqual([1e-5, 1e-1]);
    // at least three decades: values close together look alike
    expect(heatRange([0.0035, 0.0054])).toEqual([0.0054 / 1e3, 0.0054]);
    // at most six
    expect(heatRange([1e-12, 1])).toEqual([1e-6, 1]);
    expect(heatRange([])).toEqual([1e-6, 1]);
    expect(heatColor(null)).toBe('#d62728');
    expect(heatColor(0)).toBe('#f4f4f6');
    expect(heatColor(1e-3, 1e-3, 1e-1)).toBe('rgb(68,1,84)');
    expect(heatColor(1e-1, 1e-3, 1e-1)).toBe('rgb(253,231,37)');
  });
});

describe('graph and curves', () => {
  test('every commit one row, newest first; every parent edge drawn; branches in lanes of their own', () => {
    const model = new Model(data);
    const { rows, lanes } = layoutGraph(data, model);
    expect(rows.map((r) => r.commit)).toEqual(data.commits.map((_, i) => i).reverse());
    for (const r of rows) expect(r.edges.map((e) => data.commits[e.parent].id)).toEqual(data.commits[r.commit].parents);
    expect(lanes).toBe(2);
    const own = owners(data, model);
    const lane = new Map(rows.map((r) => [r.commit, r.lane]));
    const ftLanes = new Set(own.flatMap((o, i) => (o === 'finetune' ? [lane.get(i)] : [])));
    const mainLanes = new Set(own.flatMap((o, i) => (o === 'main' ? [lane.get(i)] : [])));
    expect(ftLanes.size).toBe(1);
    expect([...ftLanes].some((l) => mainLanes.has(l))).toBe(false);
  });

  test('one line per branch; every metric of every commit is a point', () => {
    const model = new Model(data);
    for (const m of ['val_loss', 'val_acc']) {
      const s = metricSeries(data, model, m);
      expect(s.lines.map((l) => l.branch).sort()).toEqual(['finetune', 'main']);
      for (const [i, c] of data.commits.entries()) {
        // the merge `ckpt merge` made has no metrics of its own
        if (c.meta.metrics?.[m] === undefined) continue;
        const x = s.xs.indexOf(c.meta.step!);
        expect(s.lines.some((l) => l.commits[x] === i && l.ys[x] === c.meta.metrics![m])).toBe(true);
      }
    }
  });

  test('--branches and REVs choose the history; the first two REVs are compared exactly', async () => {
    const ft = await buildViewData(store.repo, { branches: 'fine*' });
    expect(ft.branches.map((b) => b.name)).toEqual(['finetune']);
    expect(ft.commits.length).toBe(6);
    const two = await buildViewData(store.repo, { revs: [store.ids['main_300.pt'], 'main'], read: true });
    const sel = two.pairs.find((p) => p.kind === 'selected')!;
    expect(sel.exact).toBe(true);
    expect(two.selected).toEqual([sel.a, sel.b]);
    const d = await diff(store.repo, store.ids['main_300.pt'], 'main');
    const ch = new Model(two).changes(sel.a, sel.b, 2);
    for (const g of d.summary.groups) expect(ch.modules.find((m) => m.prefix === g.prefix)!.rel).toBe(g.relChange);
    await expect(buildViewData(store.repo, { branches: 'nope*' })).rejects.toThrow(/no branch matches/);
    await expect(buildViewData(store.repo, { revs: ['no-such-rev'] })).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
  });
});
