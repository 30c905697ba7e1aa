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

/**
 * Importing `node:crypto` from an ES module builds its whole export list, loading some twenty
 * internal modules (~5 ms of a start). ckpt needs it only to write (random names of temporary
 * and lock files) or to hash with SHA, so ckpt's own imports of it get a module that takes it
 * through require() on the first call: `ckpt log` and `ckpt status` never load it. A name not
 * listed here fails the build (esbuild: no matching export), so a new import is added on purpose.
 * (`node:fs` is left alone: writing to a piped or redirected stdout loads the streams anyway.)
 */
const LAZY_CRYPTO = ['createHash', 'randomBytes', 'timingSafeEqual'];
const lazyCrypto = {
  name: 'lazy-node-crypto',
  setup(b) {
    b.onResolve({ filter: /^(node:)?crypto$/ }, (args) => (/[\\/]dist[\\/]src[\\/]/.test(args.importer) ? { path: 'crypto', namespace: 'ckpt-lazy' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'ckpt-lazy' }, () => ({
      loader: 'js',
      contents: [
        "import { createRequire } from 'node:module';",
        'let crypto;',
        "const load = () => (crypto ??= createRequire(import.meta.url)('node:crypto'));",
        ...LAZY_CRYPTO.map((n) => `export function ${n}(...args) { return load().${n}(...args); }`),
      ].join('\n'),
    }));
  },
};

await build({
  absWorkingDir: root,
  plugins: [lazyCrypto],
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
