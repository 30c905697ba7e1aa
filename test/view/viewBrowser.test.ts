/**
 * `ckpt view` pages in a real browser (headless Chromium over the DevTools protocol): the demo's
 * store, and a real torch training run with two branches, a merge and pruned commits.
 * CKPT_VIEW_SCREENSHOTS=docs writes the README's screenshots.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Chromium, chromiumPath, type Tab } from '../../bench/chromium.js';
import { main } from '../../src/cli/main.js';
import { log } from '../../src/repo/history.js';
import { Repository } from '../../src/repo/repository.js';
import { cleanupTempDirs, ROOT, tempDir } from '../e2e/helpers.js';
import { expectClean, expectEveryCommit, expectEveryMetricPoint, expectHeatEqualsDiff } from './pageChecks.js';
import { makeRunStore, type RunStore } from './runStore.js';

const shots = process.env.CKPT_VIEW_SCREENSHOTS;

describe.skipIf(!chromiumPath())('ckpt view in Chromium', () => {
  let browser: Chromium;
  let store: RunStore;
  let page: string;
  let tab: Tab;

  beforeAll(async () => {
    browser = await Chromium.launch();
    const dir = await tempDir('ckpt-view-run-');
    store = await makeRunStore(dir);
    page = path.join(dir, 'out', 'view.html');
    // the command itself, in process
    expect(await main(['view', '-o', page, '-q', '--cwd', dir, '--title', 'tiny-mixer: main + finetune'])).toBe(0);
    tab = await browser.tab(1400, 1000);
  });

  afterAll(async () => {
    await browser?.close();
    await cleanupTempDirs();
  });

  test('a training run with two branches, a merge and pruned commits: every commit, point and cell', async () => {
    const ms = await tab.open(`file://${page}`);
    expect(ms).toBeLessThan(20_000);
    expectClean(tab);

    const all = Object.values(store.ids);
    expect(all.length).toBe(10);
    await expectEveryCommit(tab, all);
    const commits = await Promise.all(all.map(async (id) => ({ id, ...(await store.repo.readCommit(id)).meta })));
    // nine checkpoints × two metrics; the merge `ckpt merge` made has none
    expect(await expectEveryMetricPoint(tab, commits)).toBe(18);

    // pruned commits are drawn greyed; the merge with its recipe
    const prunedRows = await tab.evaluate<string[]>(`[...document.querySelectorAll('.row.pruned')].map((e) => e.dataset.commit)`);
    expect(prunedRows.sort()).toEqual([...store.pruned].sort());
    expect(store.pruned.length).toBeGreaterThan(0);
    await tab.evaluate(`ckptView.select(${JSON.stringify(store.merge)})`);
    const details = await tab.evaluate<string>(`document.querySelector('.details').textContent`);
    expect(details).toContain('merge recipe');
    // the recipe `ckpt merge` recorded: method, weights, both inputs
    expect(details).toContain('"method": "linear"');
    expect(details).toContain('"weights"');
    for (const f of ['main_600.pt', 'finetune_600.pt']) expect(details).toContain(store.ids[f]);

    const { cells, exactColumns, boundColumns } = await expectHeatEqualsDiff(tab, store.repo, ['main', 'finetune'], [1, 2, 3], 2);
    // main: 6 columns (2 touch a pruned commit), finetune: 5 (its chain runs through main's 100..300)
    expect(exactColumns).toBe(3 * (4 + 3));
    expect(boundColumns).toBe(3 * (2 + 2));
    expect(cells).toBeGreaterThan(50);

    // a cell's tensors: diff's rows for that module
    await tab.evaluate(`ckptView.setHeat('finetune', 2)`);
    const heat = await tab.evaluate<{ modules: string[]; columns: { basis: string }[] }>('ckptView.heat()');
    const row = heat.modules.indexOf('blocks.1.');
    const col = heat.columns.length - 1;
    const text = await tab.evaluate<string>(`ckptView.clickCell(${col}, ${row})`);
    for (const h of ['elements changed', 'max |d|', 'rel L2', 'cosine', 'new NaN', 'new Inf', 'blocks.1.mlp.0.weight']) expect(text).toContain(h);
    expectClean(tab);

    // two commits compared: the pair's column (the merge against main's 600 is a parent pair: exact)
    await tab.evaluate(`ckptView.select(${JSON.stringify(store.ids['main_600.pt'])}, ${JSON.stringify(store.merge)})`);
    await tab.evaluate(`ckptView.setHeat('\\u0000pair', 2)`);
    const pair = await tab.evaluate<{ columns: { a: string; b: string; basis: string }[] }>('ckptView.heat()');
    expect(pair.columns).toEqual([expect.objectContaining({ a: store.ids['main_600.pt'], b: store.merge, basis: 'exact' })]);
    // not a pair the page holds: a lower bound from the tensors' norms
    await tab.evaluate(`ckptView.select(${JSON.stringify(store.ids['main_300.pt'])}, ${JSON.stringify(store.merge)})`);
    const far = await tab.evaluate<{ columns: { basis: string }[] }>('ckptView.heat()');
    expect(far.columns[0].basis).toBe('norm-bound');

    if (shots) {
      await tab.evaluate(`ckptView.select(${JSON.stringify(store.merge)}); ckptView.setHeat('main', 3); ckptView.clickCell(5, 4)`);
      await tab.screenshot(path.join(ROOT, shots, 'view-run.png'));
    }
    expectClean(tab);
  });

  test("pruned commits' storage bars are grey; a narrower window redraws the charts and the heatmap to fit", async () => {
    await tab.open(`file://${page}`);
    const rgb = (id: string) => tab.evaluate<number[]>(`ckptView.storageBar(ckptView.model.byId.get(${JSON.stringify(id)}))`);
    for (const id of store.pruned) {
      const [r, g, b] = await rgb(id);
      expect(r === g && g === b).toBe(true);
    }
    const [r, , b] = await rgb(store.ids['main_600.pt']);
    expect(b - r).toBeGreaterThan(20);

    type Widths = { charts: number[]; storage: number; heat: number; drawnFor: number };
    const before = await tab.evaluate<Widths>('ckptView.widths()');
    const resize = (width: number) => tab.client.send('Emulation.setDeviceMetricsOverride', { width, height: 1000, deviceScaleFactor: 1, mobile: false });
    await resize(700);
    let after = before;
    for (let t0 = Date.now(); after.drawnFor !== 700 && Date.now() - t0 < 10_000; await new Promise((res) => setTimeout(res, 50))) after = await tab.evaluate<Widths>('ckptView.widths()');
    await resize(1400);
    expect(after.drawnFor).toBe(700);
    expect(after.storage).toBeLessThan(before.storage);
    expect(after.storage).toBeLessThanOrEqual(700);
    expect(after.heat).toBeLessThanOrEqual(700);
    after.charts.forEach((w, i) => expect(w).toBeLessThan(before.charts[i]));
    expectClean(tab);
  });

  test("the demo's store: the page `npm run demo` writes", async () => {
    const out = await new Promise<string>((resolve, reject) => {
      const p = spawn(process.execPath, [path.join(ROOT, 'dist', 'demo', 'demo.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      p.stdout.on('data', (b) => (text += b));
      p.stderr.on('data', (b) => (text += b));
      p.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(text))));
    });
    const dir = /The demo folder stays at (\S+);/.exec(out)![1];
    try {
      const demoTab = await browser.tab(1400, 1000);
      await demoTab.open(`file://${path.join(dir, 'view.html')}`);
      expectClean(demoTab);
      const repo = await Repository.open(dir);
      const entries = await log(repo);
      expect(entries.length).toBe(4);
      await expectEveryCommit(demoTab, entries.map((e) => e.id));
      expect(await expectEveryMetricPoint(demoTab, entries.map((e) => ({ id: e.id, ...e.commit.meta })))).toBe(4);
      const { exactColumns } = await expectHeatEqualsDiff(demoTab, repo, ['main'], [1, 2, 3], 2);
      expect(exactColumns).toBe(9);
      if (shots) {
        await demoTab.evaluate(`ckptView.setHeat('main', 2); ckptView.clickCell(2, 3)`);
        await demoTab.screenshot(path.join(ROOT, shots, 'view-demo.png'));
      }
      expectClean(demoTab);
      await demoTab.close();
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
