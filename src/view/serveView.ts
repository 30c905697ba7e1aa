/**
 * `ckpt serve`'s page: GET /<repo>/view answers the same page `ckpt view` writes, drawn live
 * from the store (its read token applies: the server checks it before calling here). A page is
 * drawn again only when a ref or a pruned mark moved, since drawing reads the changed chunks.
 */
import { promises as fs } from 'node:fs';
import type * as http from 'node:http';
import * as path from 'node:path';
import { NotFoundError } from '../core/errors.js';
import { Repository } from '../repo/repository.js';
import { renderViewHtml } from './htmlWriter.js';
import { buildViewData } from './viewData.js';

const cache = new Map<string, { state: string; html: Buffer; csp: string }>();

/** What the page depends on besides immutable objects: every ref and pruned mark, with their times. */
async function storeState(storeDir: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const ents = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of ents) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else {
        const st = await fs.stat(p).catch(() => undefined);
        if (st) parts.push(`${path.relative(storeDir, p)}:${st.size}:${st.mtimeMs}`);
      }
    }
  };
  for (const d of ['refs', 'pruned', 'objects/index']) await walk(path.join(storeDir, d));
  parts.push(`HEAD:${await fs.readFile(path.join(storeDir, 'HEAD'), 'utf8').catch(() => '')}`);
  return parts.sort().join('\n');
}

/** Answers GET or HEAD /<name>/view for the store at `storeDir`; returns the body bytes sent. */
export async function serveView(storeDir: string, name: string, res: http.ServerResponse, head: boolean): Promise<number> {
  // a work tree's store; a bare store (pushed to) has no config to open it by
  if (path.basename(storeDir) !== '.ckpt') throw new NotFoundError(`a page for ${name} (not a work tree's store)`);
  const state = await storeState(storeDir);
  let page = cache.get(storeDir);
  if (!page || page.state !== state) {
    const repo = await Repository.open(path.dirname(storeDir));
    const { html, csp } = renderViewHtml(await buildViewData(repo, { title: name }));
    page = { state, html: Buffer.from(html), csp };
    cache.set(storeDir, page);
  }
  res.writeHead(200, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': page.html.byteLength,
    'Content-Security-Policy': page.csp,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'Cache-Control': 'no-store',
  });
  res.end(head ? undefined : page.html);
  return head ? 0 : page.html.byteLength;
}
