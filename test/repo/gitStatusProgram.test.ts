/**
 * Provenance read through `git status --porcelain=v2` says exactly what isomorphic-git says,
 * for every kind of change a training repository has.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gitStateFromIsomorphicGit, gitStateFromProgram, readGitState } from '../../src/repo/provenance.js';

const scratch: string[] = [];
afterAll(async () => {
  for (const d of scratch) await fs.rm(d, { recursive: true, force: true });
});

const HAVE_GIT = (() => {
  try {
    execFileSync('git', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

describe.runIf(HAVE_GIT)('git status as the provenance source', () => {
  it('agrees with isomorphic-git on modified, deleted, staged, renamed, untracked and ignored files', async () => {
    const root = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-gitstatus-')));
    scratch.push(root);
    const g = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: root });
    g('init', '-q', '-b', 'train');
    g('remote', 'add', 'origin', 'https://example.com/lab/model.git');
    const put = async (rel: string, text: string) => {
      await fs.mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await fs.writeFile(path.join(root, rel), text);
    };
    for (const f of ['a.py', 'b.py', 'd.py', 'e.txt', 'sp ace.py', 'pkg/mod.py', 'same.py']) await put(f, `# ${f}\n`);
    await put('.gitignore', '*.log\n');
    g('add', '-A');
    g('commit', '-q', '-m', 'code');
    await put('a.py', 'changed\n');
    await fs.rm(path.join(root, 'b.py'));
    await put('c.py', 'staged new\n');
    g('add', 'c.py');
    g('rm', '-q', '--cached', 'd.py');
    g('mv', 'e.txt', 'e2.txt');
    await put('sp ace.py', 'changed too\n');
    await put('pkg/mod.py', 'changed in a folder\n');
    await put('sub/deep/new.py', 'untracked\n');
    await put('train.log', 'ignored\n');
    await put('model.pt', 'the checkpoint being committed\n');
    await put('other.pt', 'another checkpoint\n');
    await put('.ckpt/packs/x', 'the store\n');

    const exclude = [path.join(root, 'model.pt')];
    const fromGit = await gitStateFromProgram(root, exclude);
    const fromIso = await gitStateFromIsomorphicGit(root, exclude);
    expect(fromGit).toBeDefined();
    const sorted = (s: typeof fromIso) => ({ ...s, changed: [...s.changed].sort(), deleted: [...s.deleted].sort(), untracked: [...s.untracked].sort() });
    expect(sorted(fromGit!)).toEqual(sorted(fromIso));
    expect(fromGit).toMatchObject({
      root,
      branch: 'train',
      remote: 'https://example.com/lab/model.git',
      dirty: true,
      changed: ['a.py', 'b.py', 'c.py', 'd.py', 'e.txt', 'e2.txt', 'pkg/mod.py', 'sp ace.py'],
      deleted: ['b.py', 'e.txt'],
      untracked: ['other.pt', 'sub/deep/new.py'],
    });
    expect(fromGit!.commit).toMatch(/^[0-9a-f]{40}$/);
    // readGitState takes the program's answer from any folder inside the work tree
    expect(await readGitState(path.join(root, 'pkg'), exclude)).toEqual(fromGit);

    // a clean tree on a detached HEAD
    g('reset', '-q', '--hard');
    g('clean', '-q', '-fdx');
    g('checkout', '-q', '--detach');
    const clean = await gitStateFromProgram(root);
    expect(clean).toEqual(await gitStateFromIsomorphicGit(root));
    expect(clean).toMatchObject({ dirty: false, changed: [], untracked: [] });
    expect(clean!.branch).toBeUndefined();
  });
});
