// Bundles the `ckpt view` page (src/view/page/, browser TypeScript, with uPlot from node_modules)
// into dist/view/: page.js and page.css, which the HTML writer inlines into every page.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const uplot = JSON.parse(readFileSync(new URL('../node_modules/uplot/package.json', import.meta.url), 'utf8'));
// uPlot's MIT notice travels with every page that bundles it
const banner = `/*! uPlot ${uplot.version}, copyright (c) Leon Sorokin, MIT License. The rest: ckpt, Apache-2.0. */`;
await build({
  absWorkingDir: root,
  entryPoints: ['src/view/page/main.ts'],
  outdir: 'dist/view',
  entryNames: 'page',
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  platform: 'browser',
  legalComments: 'none',
  banner: { js: banner, css: banner },
  logLevel: 'warning',
  tsconfig: 'src/view/page/tsconfig.json',
});
