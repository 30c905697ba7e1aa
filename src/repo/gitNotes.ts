/**
 * Git notes under `refs/notes/ckpt`: the note on a code commit lists the checkpoint commits made
 * from it, one line each, so `git log --notes=ckpt` shows them with no ckpt installed. Written
 * by `git notes` where the `git` program is installed, else with isomorphic-git, as ordinary notes
 * commits either way.
 *
 * isomorphic-git updates the notes ref without a compare-and-swap, so ckpt processes serialise
 * their read-modify-write on a lock in the ckpt store; a concurrent `git notes` by hand could
 * still race, which costs a line of a note, never checkpoint data.
 */
import fs from 'node:fs';
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { runGit } from './runGit.js';

/** isomorphic-git is loaded when a note is read or written, not by every command importing this. */
const isoGit = async () => (await import('isomorphic-git')).default;

export const NOTES_REF = 'refs/notes/ckpt';
const LINE_RE = /^ckpt ([0-9a-f]{64})\b/;

export function noteLine(id: ObjectId, branch: string | undefined, message: string): string {
  const where = branch ? ` (${branch.replace(/^refs\/heads\//, '')})` : '';
  return `ckpt ${id}${where} ${message.split('\n')[0]}`.trimEnd();
}

export async function readNote(gitRoot: string, oid: string): Promise<string | undefined> {
  try {
    return Buffer.from(await (await isoGit()).readNote({ fs, dir: gitRoot, ref: NOTES_REF, oid })).toString('utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'NotFoundError') return undefined;
    throw e;
  }
}

/** Checkpoint commit ids listed in the note on `oid`. */
export async function checkpointsNoted(gitRoot: string, oid: string): Promise<ObjectId[]> {
  const text = await readNote(gitRoot, oid);
  if (!text) return [];
  return text.split('\n').flatMap((l) => LINE_RE.exec(l)?.[1] ?? []);
}

async function author(gitRoot: string): Promise<{ name: string; email: string }> {
  const name = (await (await isoGit()).getConfig({ fs, dir: gitRoot, path: 'user.name' }).catch(() => undefined)) as string | undefined;
  const email = (await (await isoGit()).getConfig({ fs, dir: gitRoot, path: 'user.email' }).catch(() => undefined)) as string | undefined;
  return { name: name || 'ckpt', email: email || 'ckpt@localhost' };
}

/** user.name and user.email of the repository's own config (as isomorphic-git reads them), with ckpt's defaults. */
function authorFromConfig(text: string): { name: string; email: string } {
  const get = (key: string) => text.split('\n').find((l) => l.startsWith(`${key} `))?.slice(key.length + 1);
  return { name: get('user.name') || 'ckpt', email: get('user.email') || 'ckpt@localhost' };
}

/**
 * Appends `line` to the note on `oid` (no-op when the checkpoint is already listed), one writer
 * at a time: `exclusive` runs the write under the store's lock of Git notes.
 */
export async function appendNote(gitRoot: string, oid: string, line: string, exclusive: (write: () => Promise<void>) => Promise<void>): Promise<void> {
  await exclusive(async () => {
    // with the `git` program: the note and the author from git itself, not isomorphic-git (whose
    // loading and reading cost more than a commit's checkpoint in a big work tree)
    const [shown, config] = await Promise.all([
      runGit(gitRoot, ['notes', `--ref=${NOTES_REF}`, 'show', oid], { okExitCodes: [1] }),
      runGit(gitRoot, ['config', '--local', '--get-regexp', '^user\\.(name|email)$'], { okExitCodes: [1] }),
    ]);
    const viaGit = shown !== undefined && config !== undefined;
    const old = (viaGit ? shown.toString('utf8') : await readNote(gitRoot, oid)) ?? '';
    const id = LINE_RE.exec(line)?.[1];
    if (id && old.split('\n').some((l) => LINE_RE.exec(l)?.[1] === id)) return;
    const note = `${old}${old && !old.endsWith('\n') ? '\n' : ''}${line}\n`;
    const who = viaGit ? authorFromConfig(config.toString('utf8')) : await author(gitRoot);
    // isomorphic-git's note commit reads and parses the whole Git index (seconds in a work tree
    // of 50,000 files); `git notes` does not touch it
    if (await addNoteWithGit(gitRoot, oid, note, who)) return;
    await (await isoGit()).addNote({ fs, dir: gitRoot, ref: NOTES_REF, oid, note, force: true, author: who });
  });
}

/** Writes the note with the `git` program; false when there is none or it fails (isomorphic-git then writes it). */
async function addNoteWithGit(gitRoot: string, oid: string, note: string, who: { name: string; email: string }): Promise<boolean> {
  const env = { GIT_AUTHOR_NAME: who.name, GIT_AUTHOR_EMAIL: who.email, GIT_COMMITTER_NAME: who.name, GIT_COMMITTER_EMAIL: who.email };
  // no automatic gc or maintenance in the background of the user's repository: a notes commit
  // would otherwise start one (git notes runs `gc --auto`), which isomorphic-git never did
  const args = ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false', 'notes', `--ref=${NOTES_REF}`, 'add', '-f', '-F', '-', oid];
  return (await runGit(gitRoot, args, { input: note, env })) !== undefined;
}

/** A Git revision (HEAD, a branch, a tag, a full or abbreviated id) as a commit id. */
export async function resolveGitRevision(gitRoot: string, rev: string): Promise<string> {
  try {
    return await (await isoGit()).resolveRef({ fs, dir: gitRoot, ref: rev });
  } catch {
    // not a ref: an object id, maybe abbreviated
  }
  if (/^[0-9a-f]{4,40}$/i.test(rev)) {
    try {
      return await (await isoGit()).expandOid({ fs, dir: gitRoot, oid: rev.toLowerCase() });
    } catch {
      // fall through
    }
  }
  throw new CkptError('E_NOT_FOUND', `not a Git revision in ${gitRoot}: ${rev}`, { rev });
}
