/**
 * Tree paths are data from strangers: a tree received from a remote names the files a checkout
 * writes. One validator, used where a tree is received (fetch, clone, push, direct reads) and
 * again before a checkout writes anything, refuses every path that could land outside the work
 * tree or inside `.git` / `.ckpt` (Git's rules since CVE-2014-9390 and CVE-2018-11235):
 *
 * - no empty, `.` or `..` component, no leading `/`, no backslash, NUL or other control byte;
 * - no component that a file system folds to `.git` or `.ckpt`: any case, trailing dots and
 *   spaces (Windows), an NTFS stream suffix (`.git::$INDEX_ALLOCATION`), an 8.3 short name
 *   (`git~1`), or HFS+ ignorable code points (`.g\u200cit`);
 * - no entry that is both a file and a folder (`a` beside `a/b`).
 */
import { CkptError } from './errors.js';
import { isObjectId } from './objectId.js';

/** Code points HFS+ ignores when comparing names (as Git's is_hfs_dotgit lists them). */
const HFS_IGNORABLE = /[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;
const RESERVED = new Set(['.git', '.ckpt']);
const SHORT_NAME = /^(git|ckpt)~\d+$/;

/** A component as case-insensitive, NTFS and HFS+ file systems would compare it. */
export function foldComponent(c: string): string {
  let f = c.replace(HFS_IGNORABLE, '').toLowerCase();
  const colon = f.indexOf(':');
  if (colon >= 0) f = f.slice(0, colon);
  return f.replace(/[ .]+$/, '');
}

/** Why `p` may not be a tree path, or undefined when it is fine. */
export function treePathFault(p: unknown): string | undefined {
  if (typeof p !== 'string') return 'not a string';
  if (p === '') return 'empty path';
  if (p.startsWith('/')) return 'absolute path';
  if (/^[A-Za-z]:/.test(p)) return 'drive-letter path';
  if (p.includes('\\')) return 'backslash in path';
  if (/[\x00-\x1f\x7f]/.test(p)) return 'control character in path';
  for (const c of p.split('/')) {
    if (c === '') return 'empty component';
    if (c === '.' || c === '..') return `"${c}" component`;
    const f = foldComponent(c);
    if (f === '') return `component "${c}" folds to an empty name`;
    if (RESERVED.has(f) || SHORT_NAME.test(f)) return `component "${c}" names ${f.startsWith('.') ? f : `a short name of .${f.replace(/~\d+$/, '')}`}`;
  }
  return undefined;
}

export class BadTreeError extends CkptError {
  constructor(message: string, data: Record<string, unknown>) {
    super('E_CORRUPT', message, data);
    this.name = 'BadTreeError';
  }
}

function where(tree: string | undefined, commit: string | undefined): string {
  return `${tree ? `tree ${tree}` : 'a tree'}${commit ? ` of commit ${commit}` : ''}`;
}

/** Throws E_CORRUPT naming the tree (and commit) and the entry unless `p` is a safe tree path. */
export function checkTreePath(p: string, tree?: string, commit?: string): string {
  const fault = treePathFault(p);
  if (fault) throw new BadTreeError(`${where(tree, commit)}: refusing entry ${JSON.stringify(p)}: ${fault}`, { tree, commit, entry: p, fault });
  return p;
}

/**
 * Checks a decoded tree object: its shape, every path, and that no path is also a folder of
 * another. Returns it typed; throws BadTreeError (E_CORRUPT) otherwise.
 */
export function validateTree<T extends { type: 'tree'; files: Record<string, unknown> }>(obj: unknown, tree?: string, commit?: string): T {
  const v = obj as { type?: unknown; files?: unknown } | null;
  if (!v || typeof v !== 'object' || v.type !== 'tree') {
    const kind = v && typeof v === 'object' && typeof v.type === 'string' ? `a ${v.type}` : 'not a tree';
    throw new BadTreeError(`${where(tree, commit)} is ${kind}, not a tree`, { tree, commit });
  }
  const files = v.files;
  if (!files || typeof files !== 'object' || Array.isArray(files) || files instanceof Uint8Array) {
    throw new BadTreeError(`${where(tree, commit)} has no file table`, { tree, commit });
  }
  const paths = Object.keys(files);
  const all = new Set(paths);
  for (const p of paths) {
    checkTreePath(p, tree, commit);
    const e = (files as Record<string, unknown>)[p] as { manifest?: unknown; size?: unknown; hash?: unknown; format?: unknown } | null;
    if (
      !e ||
      typeof e !== 'object' ||
      typeof e.manifest !== 'string' ||
      !isObjectId(e.manifest) ||
      !Number.isSafeInteger(e.size) ||
      (e.size as number) < 0 ||
      typeof e.hash !== 'string' ||
      typeof e.format !== 'string'
    ) {
      throw new BadTreeError(`${where(tree, commit)}: entry ${JSON.stringify(p)} is malformed`, { tree, commit, entry: p });
    }
    for (let i = p.indexOf('/'); i >= 0; i = p.indexOf('/', i + 1)) {
      const dir = p.slice(0, i);
      if (all.has(dir)) {
        throw new BadTreeError(`${where(tree, commit)}: entry ${JSON.stringify(dir)} is both a file and the folder of ${JSON.stringify(p)}`, {
          tree,
          commit,
          entry: dir,
        });
      }
    }
  }
  return obj as T;
}
