/**
 * A clone explains itself: README.md and docs/ link only to files inside the repository (and those
 * files exist), and nothing in the sources, tests, benchmarks, scripts or docs points at the
 * read-only design folder that lived beside the repository during development.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../e2e/helpers.js';

function filesUnder(dir: string, keep: (f: string) => boolean): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const f = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'dist' && !e.name.startsWith('.')) out.push(...filesUnder(f, keep));
    } else if (keep(f)) out.push(f);
  }
  return out;
}

const MARKDOWN = [path.join(ROOT, 'README.md'), ...filesUnder(path.join(ROOT, 'docs'), (f) => f.endsWith('.md'))];
const TEXT = /\.(ts|mjs|js|py|sh|md|json)$/;
const SOURCES = [
  path.join(ROOT, 'README.md'),
  path.join(ROOT, 'package.json'),
  ...['src', 'test', 'bench', 'demo', 'scripts', 'docs', 'bin'].flatMap((d) => filesUnder(path.join(ROOT, d), (f) => TEXT.test(f) || d === 'bin')),
  // fixture scripts and notes, not the fixture data
  ...filesUnder(path.join(ROOT, 'fixtures'), (f) => /\.(py|sh|mjs|md)$/.test(f)),
];

/** Link targets of a Markdown text: [text](target) and <target>, minus URLs and anchors. */
function localLinks(md: string): string[] {
  const links = [...md.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g), ...md.matchAll(/<([^>\s]+\.[a-z]+)>/g)].map((m) => m[1]);
  return links.filter((l) => !/^[a-z][a-z0-9+.-]*:/i.test(l) && !l.startsWith('#')).map((l) => decodeURIComponent(l.split('#')[0]));
}

describe('the repository is self-contained', () => {
  it('finds the documents to check', () => {
    expect(MARKDOWN.map((f) => path.relative(ROOT, f))).toEqual(expect.arrayContaining(['README.md', 'docs/architecture.md', 'docs/format.md']));
    expect(SOURCES.length).toBeGreaterThan(100);
  });

  for (const file of MARKDOWN) {
    it(`${path.relative(ROOT, file)}: every relative link stays inside the repository and resolves`, () => {
      const bad: string[] = [];
      for (const link of localLinks(readFileSync(file, 'utf8'))) {
        const target = path.resolve(path.dirname(file), link);
        const rel = path.relative(ROOT, target);
        if (path.isAbsolute(link) || rel.startsWith('..') || path.isAbsolute(rel)) bad.push(`${link} (outside the repository)`);
        else if (!existsSync(target)) bad.push(`${link} (missing)`);
      }
      expect(bad).toEqual([]);
    });
  }

  it('no file points at the design folder outside the repository', () => {
    const hits = SOURCES.filter((f) => statSync(f).isFile() && f !== fileURLToPath(import.meta.url))
      .flatMap((f) => readFileSync(f, 'utf8').split('\n').map((l, i) => [f, i + 1, l] as const))
      .filter(([, , l]) => /\.\.\/shared\b|\bshared\/DESIGN\.md|\/work\/shared|design-notes\.md/.test(l))
      .map(([f, i, l]) => `${path.relative(ROOT, f)}:${i}: ${l.trim()}`);
    expect(hits).toEqual([]);
  });
});
