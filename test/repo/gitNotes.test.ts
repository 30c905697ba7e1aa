/**
 * Git notes under refs/notes/ckpt are written by the `git` program where it is installed and by
 * isomorphic-git where it is not; either way the real git reads one note per code commit, a line
 * per checkpoint, each checkpoint once.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appendNote, checkpointsNoted, noteLine } from '../../src/repo/gitNotes.js';

const GIT = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const git = (dir: string, ...args: string[]) => execFileSync(GIT, args, { cwd: dir, encoding: 'utf8' });
const serial = (write: () => Promise<void>) => write();

async function codeRepo(): Promise<{ dir: string; head: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ckpt-notes-'));
  dirs.push(dir);
  git(dir, 'init', '-q');
  git(dir, 'config', 'user.name', 'Trainer');
  git(dir, 'config', 'user.email', 'trainer@example.com');
  await writeFile(path.join(dir, 'train.py'), 'print(1)\n');
  git(dir, 'add', '-A');
  git(dir, 'commit', '-qm', 'code');
  return { dir, head: git(dir, 'rev-parse', 'HEAD').trim() };
}

/** Runs `fn` with no `git` on the PATH, as on a machine without it. */
async function withoutGitProgram<T>(fn: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = path.join(os.tmpdir(), 'ckpt-no-such-bin');
  try {
    return await fn();
  } finally {
    process.env.PATH = saved;
  }
}

describe('Git notes of checkpoints', () => {
  it('by the git program and by isomorphic-git alike: one line per checkpoint, each once, read by git', async () => {
    const { dir, head } = await codeRepo();
    const ids = ['a', 'b', 'c'].map((c) => c.repeat(64));
    await appendNote(dir, head, noteLine(ids[0], 'refs/heads/main', 'step 100'), serial);
    await withoutGitProgram(() => appendNote(dir, head, noteLine(ids[1], 'refs/heads/main', 'step 200'), serial));
    await appendNote(dir, head, noteLine(ids[2], undefined, 'step 300\nmore text'), serial);
    // again, by either writer: nothing added
    await appendNote(dir, head, noteLine(ids[0], 'refs/heads/main', 'step 100'), serial);
    await withoutGitProgram(() => appendNote(dir, head, noteLine(ids[2], undefined, 'step 300'), serial));
    expect(git(dir, 'notes', '--ref=ckpt', 'show', head)).toBe(`ckpt ${ids[0]} (main) step 100\nckpt ${ids[1]} (main) step 200\nckpt ${ids[2]} step 300\n`);
    expect(await checkpointsNoted(dir, head)).toEqual(ids);
    // the notes commits carry the repository's own identity
    expect(git(dir, 'log', '-1', '--format=%an <%ae>', 'refs/notes/ckpt').trim()).toBe('Trainer <trainer@example.com>');
    // and the work tree is untouched: nothing staged, nothing changed
    expect(git(dir, 'status', '--porcelain')).toBe('');
  });
});
