/**
 * Where a work tree keeps its store: the `.ckpt` folder at its top. Everything else that needs
 * to know this name (finding the repository from a folder inside it, keeping the store out of
 * Git, out of a watched folder's checkpoints and out of code provenance, `ckpt serve` telling a
 * work tree's store from a bare one) asks here.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

const STORE_FOLDER = '.ckpt';

/** The store folder of the work tree at `root`. */
export function storeDirOf(root: string): string {
  return path.join(root, STORE_FOLDER);
}

/** The work tree whose store is `storeDir`, or undefined for a bare store (one pushed to). */
export function workTreeOf(storeDir: string): string | undefined {
  return path.basename(storeDir) === STORE_FOLDER ? path.dirname(storeDir) : undefined;
}

/** Whether an entry of a folder, by name, is a work tree's store. */
export function isStoreFolderName(name: string): boolean {
  return name === STORE_FOLDER;
}

/** Whether a path relative to the work tree, with forward slashes (as Git prints it), lies in the store. */
export function isInStore(relPath: string): boolean {
  return relPath.startsWith(`${STORE_FOLDER}/`);
}

/** The `.gitignore` lines of a work tree with a store: the store stays out of Git, its shared config does not. */
export const STORE_GITIGNORE_LINES: readonly string[] = [
  '# ckpt: the store stays out of Git; its shared config does not',
  `/${STORE_FOLDER}/*`,
  `!/${STORE_FOLDER}/config`,
];

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(
    () => true,
    () => false,
  );
}

/** The nearest folder at or above `start` holding `name`. */
export async function findUp(start: string, name: string): Promise<string | undefined> {
  for (let dir = path.resolve(start); ; ) {
    if (await exists(path.join(dir, name))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** The top of the work tree whose store is at `cwd` or a folder above it (one with a config), or undefined. */
export function findWorkTree(cwd: string): Promise<string | undefined> {
  return findUp(cwd, path.join(STORE_FOLDER, 'config'));
}
