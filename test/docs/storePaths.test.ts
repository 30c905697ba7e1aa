/**
 * Only src/store/ (and the backend drivers in src/backend/) know the layout of a store: no other
 * file of src/ builds a path inside one (docs/architecture.md, "On disk"). They ask the Store
 * (store.lockShared, store.scratchFile, store.listPacks, store.pruned, ...) or storeLocation.ts
 * (where a work tree keeps its store) instead. This reads every other source file, comments left
 * out, and lists each place that reaches into a store by hand, as file:line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../e2e/helpers.js';

/** Folders that may know the layout. */
const LAYOUT_OWNERS = ['src/store/', 'src/backend/'];

/** Names of a store's folders and files: as a segment of a literal given to a path call, they build a store path. */
const STORE_NAMES = new Set([
  '.ckpt',
  'objects',
  'packs',
  'index',
  'meta',
  'refs',
  'heads',
  'tags',
  'remotes',
  'parts',
  'logs',
  'locks',
  'shared',
  'gc.lock',
  'git-notes.lock',
  'pruned',
  'tmp',
  'HEAD',
  'config',
  'config.local',
  'stat-cache.json',
  'no-git-noted',
]);

/**
 * The few places allowed, each with its reason. `text` is what the rule matched on that line.
 */
const ALLOWED: { file: string; text: string; why: string }[] = [
  { file: 'src/cli/initCommand.ts', text: 'store.dir', why: '`ckpt init` prints where the new store is; it builds no path from it' },
  {
    file: 'src/core/treePath.ts',
    text: "'.ckpt'",
    why: 'a tree entry may not be named like the store folder (a checkout would write into the store); core sits below src/store/ and cannot ask it',
  },
  { file: 'src/watch/checkpointNames.ts', text: "'.ckpt'", why: 'the checkpoint file extension (PyTorch Lightning writes model.ckpt), not the store folder' },
  { file: 'src/merge/outputFormat.ts', text: "'.ckpt'", why: 'the checkpoint file extension (PyTorch Lightning writes model.ckpt), not the store folder' },
];

/** The source with comments blanked out (strings kept, line breaks kept so line numbers hold). */
export function stripComments(src: string): string {
  let out = '';
  let i = 0;
  let quote: string | undefined;
  while (i < src.length) {
    const c = src[i];
    if (quote) {
      out += c;
      if (c === '\\') {
        out += src[i + 1] ?? '';
        i += 2;
        continue;
      }
      if (c === quote) quote = undefined;
      i++;
    } else if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? src.length : end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
    } else {
      if (c === "'" || c === '"' || c === '`') quote = c;
      out += c;
      i++;
    }
  }
  return out;
}

/** The text of a call's arguments: from the parenthesis at `open` to its match. */
function argumentsAt(src: string, open: number): string {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    if (src[i] === '(') depth++;
    else if (src[i] === ')' && --depth === 0) return src.slice(open + 1, i);
  }
  return src.slice(open + 1);
}

const lineOf = (src: string, at: number) => src.slice(0, at).split('\n').length;

/** Every place in `src` (comments already out) that builds a store path by hand: [line, matched text]. */
export function storePathFaults(src: string): [number, string][] {
  const found: [number, string][] = [];
  const add = (at: number, text: string) => found.push([lineOf(src, at), text]);
  // the Store's own folders and whatever names a store folder
  for (const m of src.matchAll(/\.(packsDir|indexDir|locksDir|objectsDir|tmpDir)\b|\bstoreDir\b|\bstore\.dir\b/g)) add(m.index!, m[0]);
  // a literal naming a store folder or file, given to a path call
  for (const m of src.matchAll(/\b(?:path\.)?(?:join|resolve|normalize)\(/g)) {
    const args = argumentsAt(src, m.index! + m[0].length - 1);
    for (const lit of args.matchAll(/'([^'\n]*)'|"([^"\n]*)"/g)) {
      const value = lit[1] ?? lit[2];
      if (value.split('/').some((seg) => STORE_NAMES.has(seg))) add(m.index!, `${m[0]}...${lit[0]}`);
    }
  }
  // a template literal continuing a path into a store folder
  for (const m of src.matchAll(/\}\/(?:\.ckpt|objects|refs|logs|locks|pruned|tmp)(?:\/|`)/g)) add(m.index!, m[0]);
  // the store folder's name, anywhere
  for (const m of src.matchAll(/(['"`])\/?\.ckpt(?:\/[^'"`\n]*)?\1/g)) add(m.index!, m[0]);
  return found;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('store paths', () => {
  it('the rules catch each way of building a store path by hand', () => {
    const sample = [
      "const a = path.join(repo.store.dir, 'pruned', id);",
      'const b = repo.store.packsDir;',
      "const c = path.join(storeDir, 'objects', 'index');",
      'const d = join(root, ".ckpt");',
      "const e = path.resolve(x, 'logs/refs/parts');",
      'const f = `${dir}/objects/packs`;',
      "const g = ['/.ckpt/*'];",
      '// a comment may say path.join(store.dir, "refs") freely',
      "const h = path.join(out, 'model.safetensors'); const i = t.list('objects/index/');",
    ].join('\n');
    expect(storePathFaults(stripComments(sample)).map(([line]) => line).sort((a, b) => a - b)).toEqual([1, 1, 2, 3, 3, 3, 4, 4, 5, 6, 7]);
  });

  it('no file outside src/store/ and src/backend/ builds a path inside a store', () => {
    const faults: string[] = [];
    const used = new Set<(typeof ALLOWED)[number]>();
    for (const file of sources(path.join(ROOT, 'src'))) {
      const rel = path.relative(ROOT, file).split(path.sep).join('/');
      if (LAYOUT_OWNERS.some((d) => rel.startsWith(d))) continue;
      for (const [line, text] of storePathFaults(stripComments(readFileSync(file, 'utf8')))) {
        const ok = ALLOWED.find((a) => a.file === rel && text.includes(a.text));
        if (ok) used.add(ok);
        else faults.push(`${rel}:${line}: ${text}`);
      }
    }
    expect(faults).toEqual([]);
    // an exception nothing needs any more goes
    expect(ALLOWED.filter((a) => !used.has(a)).map((a) => `${a.file}: ${a.text}`)).toEqual([]);
  });
});
