/**
 * The layering of docs/architecture.md, checked: a folder of src/ imports only from the folders
 * before it (core <- chunking <- diff, formats; core <- backend <- store <- repo <- merge, view, watch <- sync <- serve <- cli).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../e2e/helpers.js';

const MAY_IMPORT: Record<string, string[]> = {
  core: [],
  chunking: ['core'],
  diff: ['core', 'chunking'],
  formats: ['core', 'chunking'],
  backend: ['core'],
  store: ['core', 'chunking', 'backend'],
  repo: ['core', 'chunking', 'diff', 'formats', 'backend', 'store'],
  merge: ['core', 'chunking', 'diff', 'formats', 'backend', 'store', 'repo'],
  view: ['core', 'chunking', 'diff', 'formats', 'backend', 'store', 'repo'],
  watch: ['core', 'chunking', 'diff', 'formats', 'backend', 'store', 'repo'],
  sync: ['core', 'chunking', 'diff', 'formats', 'backend', 'store', 'repo'],
  serve: ['core', 'chunking', 'diff', 'formats', 'backend', 'store', 'repo', 'view', 'sync'],
  cli: ['core', 'chunking', 'diff', 'formats', 'backend', 'store', 'repo', 'merge', 'view', 'watch', 'sync', 'serve'],
};

describe('layers', () => {
  it('every folder of src/ has a place in the layering', () => {
    const folders = readdirSync(path.join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.filter((f) => !(f in MAY_IMPORT))).toEqual([]);
  });

  it('imports go only downward', () => {
    const bad: string[] = [];
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
    const src = path.join(ROOT, 'src');
    for (const [layer, allowed] of Object.entries(MAY_IMPORT)) {
      // every file of the layer, subfolders included (src/view/page/ is browser code of the view layer)
      for (const file of files(path.join(src, layer))) {
        const text = readFileSync(file, 'utf8');
        for (const m of text.matchAll(/(?:from\s+|import\()\s*'(\.{1,2}\/[^']+)'/g)) {
          const target = path.relative(src, path.resolve(path.dirname(file), m[1])).split(path.sep)[0];
          if (target !== layer && !allowed.includes(target)) bad.push(`${path.relative(ROOT, file)} imports src/${target}/`);
        }
      }
    }
    expect(bad).toEqual([]);
  });
});
