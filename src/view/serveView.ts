/**
 * `ckpt serve`'s page: GET /<repo>/view answers the same page `ckpt view` writes, drawn live
 * from the store (its read token applies: the server checks it before calling here). A page is
 * drawn again only when a ref or a pruned mark moved, since drawing reads the changed chunks.
 */
import type * as http from 'node:http';
import { NotFoundError } from '../core/errors.js';
import { Repository } from '../repo/repository.js';
import type { ServedStore } from '../store/servedStore.js';
import { renderViewHtml } from './htmlWriter.js';
import { buildViewData } from './viewData.js';

const cache = new Map<string, { state: string; html: Buffer; csp: string }>();

/** Answers GET or HEAD /<name>/view for a served store; returns the body bytes sent. */
export async function serveView(store: ServedStore, name: string, res: http.ServerResponse, head: boolean): Promise<number> {
  // a work tree's store; a bare store (pushed to) has no config to open it by
  const workTree = store.workTree;
  if (workTree === undefined) throw new NotFoundError(`a page for ${name} (not a work tree's store)`);
  const state = await store.state();
  let page = cache.get(store.id);
  if (!page || page.state !== state) {
    const repo = await Repository.open(workTree);
    const { html, csp } = renderViewHtml(await buildViewData(repo, { title: name }));
    page = { state, html: Buffer.from(html), csp };
    cache.set(store.id, page);
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
