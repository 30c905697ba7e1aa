/**
 * The layering of docs/architecture.md, checked: a folder of src/ imports only from the folders
 * before it (core <- chunking <- formats, store <- repo <- remote <- cli).
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../e2e/helpers.js';

const MAY_IMPORT: Record<string, string[]> = {
  core: [],
  chunking: ['core'],
  formats: ['core', 'chunking'],
  store: ['core', 'chunking'],
  repo: ['core', 'chunking', 'formats', 'store'],
  merge: ['core', 'chunking', 'formats', 'store', 'repo'],
  view: ['core', 'chunking', 'formats', 'store', 'repo'],
  watch: ['core', 'chunking', 'formats', 'store', 'repo'],
  remote: ['core', 'chunking', 'formats', 'store', 'repo', 'view'],
  cli: ['core', 'chunking', 'formats', 'store', 'repo', 'merge', 'view', 'watch', 'remote'],
};

describe('layers', () => {
  it('every folder of src/ has a place in the layering', () => {
    const folders = readdirSync(path.join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    expect(folders.filter((f) => !(f in MAY_IMPORT))).toEqual([]);
  });

  it('imports go only downward', () => {
    const bad: string[] = [];
    for (const [layer, allowed] of Object.entries(MAY_IMPORT)) {
      const dir = path.join(ROOT, 'src', layer);
      for (const name of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
        const text = readFileSync(path.join(dir, name), 'utf8');
        for (const m of text.matchAll(/(?:from\s+|import\()\s*'\.\.\/([a-z]+)\//g)) {
          if (!allowed.includes(m[1])) bad.push(`src/${layer}/${name} imports src/${m[1]}/`);
        }
      }
    }
    expect(bad).toEqual([]);
  });
});
