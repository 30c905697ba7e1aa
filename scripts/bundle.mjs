/**
 * Bundles the CLI into dist/bundle/ after tsc (`npm run build`): one file for what every command
 * needs, plus one split chunk per lazily loaded command, so a start reads a handful of files
 * instead of hundreds. bin/ckpt runs the bundle when it is at least as new as dist/src, and
 * dist/src otherwise. Packages with native code (and the AWS SDK, loaded only by S3 remotes)
 * stay external and load from node_modules as before.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

const external = ['@mongodb-js/zstd', '@napi-rs/blake-hash', 'blake3', '@aws-sdk/*', 'msgpackr-extract', 'cpu-features', 'fsevents'];

// split chunks are named by content hash: drop the last build's
rmSync(new URL('../dist/bundle', import.meta.url), { recursive: true, force: true });

await build({
  absWorkingDir: root,
  entryPoints: { main: 'dist/src/cli/main.js' },
  outdir: 'dist/bundle',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  // CommonJS dependencies call require(); an ES module has none of its own
  banner: { js: "import { createRequire as __ckptCreateRequire } from 'node:module'; const require = __ckptCreateRequire(import.meta.url);" },
  logLevel: 'warning',
  legalComments: 'none',
});
