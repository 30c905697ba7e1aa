/**
 * One self-contained HTML page: the bundled page script and style (built by
 * scripts/build-view.mjs into dist/view/) and the ViewData document, all inline. The page makes
 * no request: its Content-Security-Policy allows no fetch, image, font or frame from anywhere,
 * and only the one script whose hash it names.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CkptError } from '../core/errors.js';
import type { ViewData } from './viewTypes.js';

let bundle: { js: string; css: string } | undefined;

function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new CkptError('E_IO', 'cannot find the ckpt package root for the view page');
    dir = up;
  }
  return dir;
}

function loadBundle(): { js: string; css: string } {
  if (bundle) return bundle;
  const dir = path.join(packageRoot(), 'dist', 'view');
  try {
    bundle = { js: readFileSync(path.join(dir, 'page.js'), 'utf8'), css: readFileSync(path.join(dir, 'page.css'), 'utf8') };
  } catch {
    throw new CkptError('E_IO', `the view page is not built (${dir}/page.js missing); run \`npm run build\``);
  }
  return bundle;
}

/**
 * JSON that can sit inside a <script> element: no `<`, `>` or `&` (so no `</script>` or `<!--`
 * can end or bend the element), and no U+2028/U+2029 (line ends to older JavaScript parsers).
 */
export function scriptSafeJson(value: unknown): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The Content-Security-Policy of a page whose one script is `js`. */
export function contentSecurityPolicy(js: string): string {
  const hash = createHash('sha256').update(js, 'utf8').digest('base64');
  return [
    "default-src 'none'",
    `script-src 'sha256-${hash}'`,
    "style-src 'unsafe-inline'",
    'img-src data:',
    "connect-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export function renderViewHtml(data: ViewData): { html: string; csp: string } {
  const { css } = loadBundle();
  // a literal `</script` in the bundle would end the element early
  const js = loadBundle().js.replace(/<\/(script)/gi, '<\\/$1');
  const csp = contentSecurityPolicy(js);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${escapeHtml(csp)}">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(data.title)}</title>
<style>${css.replace(/<\/(style)/gi, '<\\/$1')}</style>
</head>
<body>
<noscript>This page draws a ckpt history with JavaScript; the data is in the ckpt-data element below.</noscript>
<div id="app"></div>
<script type="application/json" id="ckpt-data">${scriptSafeJson(data)}</script>
<script>${js}</script>
</body>
</html>
`;
  return { html, csp };
}
