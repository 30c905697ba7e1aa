/**
 * Hostile names in a `ckpt view` page, written to a file and served by `ckpt serve`: shown as
 * text, never run. Chromium loads both; an injection that ran would set window.__pwned or log
 * PWNED. The served page needs the read token.
 */
import * as http from 'node:http';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Chromium, chromiumPath, type Tab } from '../../bench/chromium.js';
import { main } from '../../src/cli/main.js';
import { groupPrefix } from '../../src/diff/diffSummary.js';
import { startStoreServer, type StoreServer } from '../../src/serve/storeServer.js';
import { cleanupTempDirs, tempDir } from '../e2e/helpers.js';
import { HOSTILE, makeHostileStore } from './hostileStore.js';
import { expectClean } from './pageChecks.js';

const READ = 'reader-token';
const WRITE = 'writer-token';

function get(url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Everything the page shows as text, and whether any injection ran. */
async function expectInert(tab: Tab): Promise<void> {
  expect(await tab.evaluate('typeof window.__pwned')).toBe('undefined');
  expect(tab.log.console.filter(([, text]) => text.includes('PWNED'))).toEqual([]);
  expectClean(tab);
  const text = await tab.evaluate<string>('document.body.innerText');
  const rows = await tab.evaluate<string[]>(`[...document.querySelectorAll('.row .msg')].map((e) => e.textContent)`);
  expect(rows).toContain(`${HOSTILE.message} #3`.split('\n')[0]);
  expect(text).toContain(HOSTILE.metric);
  expect(text).toContain(HOSTILE.tag);
  const options = await tab.evaluate<string[]>(`[...document.querySelectorAll('select option')].map((o) => o.textContent)`);
  expect(options).toContain(HOSTILE.branch);
  // the tensor names as module labels and in a cell's rows
  const heat = await tab.evaluate<{ modules: string[] }>(`ckptView.setHeat('main', 9), ckptView.heat()`);
  expect([...heat.modules].sort()).toEqual(HOSTILE.tensors.map((t) => groupPrefix(t, 9)).sort());
  for (const t of HOSTILE.tensors) {
    const cell = await tab.evaluate<string>(`ckptView.clickCell(0, ${heat.modules.indexOf(groupPrefix(t, 9))})`);
    expect(cell).toContain(t.split('\u2028')[0]);
  }
  // the details panel: params, author, code provenance
  const details = await tab.evaluate<string>(`document.querySelector('.details').textContent`);
  expect(details).toContain(HOSTILE.param[1]);
  expect(details).toContain('<script>window.__pwned=8</script>');
  expect(await tab.evaluate('document.querySelectorAll("script").length')).toBe(2);
  expect(await tab.evaluate('document.querySelectorAll("img, svg > script, iframe").length')).toBe(0);
  expect(await tab.evaluate('typeof window.__pwned')).toBe('undefined');
}

describe.skipIf(!chromiumPath())('hostile names in ckpt view', () => {
  let browser: Chromium;
  let dir: string;
  let server: StoreServer;

  beforeAll(async () => {
    browser = await Chromium.launch();
    const root = await tempDir('ckpt-view-hostile-');
    dir = path.join(root, 'evil');
    await makeHostileStore(dir);
    server = await startStoreServer({ root, readToken: READ, writeToken: WRITE, log: () => undefined, closeGraceMs: 500 });
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await cleanupTempDirs();
  });

  test('the written page shows every hostile name as text and runs none', async () => {
    const page = path.join(dir, 'view.html');
    expect(await main(['view', '-o', page, '-q', '--cwd', dir])).toBe(0);
    const tab = await browser.tab();
    await tab.open(`file://${page}`);
    await expectInert(tab);
    await tab.close();
  });

  test('ckpt serve: /<repo>/view needs the read token, and escapes the same way', async () => {
    const url = `${server.url}/evil/view`;
    expect((await get(url)).status).toBe(401);
    expect((await get(url, { Authorization: 'Bearer wrong' })).status).toBe(401);
    const ok = await get(url, { Authorization: `Bearer ${READ}` });
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(ok.headers['content-security-policy']).toMatch(/default-src 'none'.*script-src 'sha256-/);
    // the write token reads too; HEAD answers the headers alone
    expect((await get(url, { Authorization: `Bearer ${WRITE}` })).status).toBe(200);
    const head = await get(url, { Authorization: `Bearer ${READ}` }, 'HEAD');
    expect([head.status, head.body]).toEqual([200, '']);
    // no hostile string reaches the markup raw: only the two page scripts, and in the data no < > &
    const data = /<script type="application\/json" id="ckpt-data">([^<]*)<\/script>/.exec(ok.body);
    expect(data).not.toBeNull();
    expect(ok.body.match(/<script/g)!.length).toBe(2);
    expect(data![1]).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(data![1]).commits.map((c: { message: string }) => c.message)).toContain(`${HOSTILE.message} #3`);
    // not a repository, and no way out of the root
    expect((await get(`${server.url}/nothing/view`, { Authorization: `Bearer ${READ}` })).status).toBe(404);
    expect((await get(`${server.url}/../view`, { Authorization: `Bearer ${READ}` })).status).toBe(400);

    const tab = await browser.tab();
    await tab.open(url, { Authorization: `Bearer ${READ}` });
    await expectInert(tab);
    await tab.close();
  });
});
