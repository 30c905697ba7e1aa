// Bundles the `ckpt view` page (src/view/page/, browser TypeScript, with uPlot from node_modules)
// into dist/view/: page.js and page.css, which the HTML writer inlines into every page.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
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
  logLevel: 'warning',
  tsconfig: 'src/view/page/tsconfig.json',
});
