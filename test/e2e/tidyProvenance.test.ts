/**
 * Acceptance 1 (provenance), against a real Git repository driven by the real `git` binary: clean
 * and dirty code recorded correctly, `git log --notes=ckpt` showing the checkpoint ids, and
 * `ckpt restore-code` giving back the exact uncommitted files. Outside Git nothing is recorded
 * and ckpt says so once.
 */
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { ckpt, ckptJson, ckptOk, cleanupTempDirs, randomF32, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

function git(cwd: string, ...args: string[]): string {
  const r = spawnSync('git', args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z' },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function writeModel(file: string, seed: number): Promise<void> {
  await fs.writeFile(file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [256, 64], data: randomF32(seed, 256 * 64) }]));
}

/** A Git repository with committed code, an origin, and a ckpt store whose own files are committed too. */
async function gitRepo(): Promise<string> {
  const dir = await tempDir('ckpt-prov-');
  git(dir, 'init', '-q', '-b', 'trainer');
  git(dir, 'config', 'user.name', 'Tester');
  git(dir, 'config', 'user.email', 'tester@example.com');
  git(dir, 'remote', 'add', 'origin', 'https://example.com/lab/trainer.git');
  await fs.writeFile(path.join(dir, 'train.py'), 'lr = 0.1\nprint("train")\n');
  await fs.writeFile(path.join(dir, 'old.py'), 'legacy = True\n');
  await fs.mkdir(path.join(dir, 'models'));
  await fs.writeFile(path.join(dir, 'models', 'net.py'), 'class Net: pass\n');
  await ckptOk(dir, 'init', '--chunk-size', '65536');
  git(dir, 'add', '.');
  git(dir, 'commit', '-q', '-m', 'trainer v1');
  return dir;
}

describe('code provenance in a real Git repository', () => {
  it('records clean code: the commit, branch, origin, not dirty; the checkpoint itself is not listed', async () => {
    const dir = await gitRepo();
    const head = git(dir, 'rev-parse', 'HEAD').trim();
    await writeModel(path.join(dir, 'model.safetensors'), 1);
    const r = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'clean run', '--step', '10');
    expect(r.code).toEqual({ commit: head, branch: 'trainer', remote: 'https://example.com/lab/trainer.git', dirty: false, changed: [], untracked: [] });
    const shown = await ckptJson(dir, 'show', r.id, '--code');
    expect(shown.code.commit).toBe(head);
    const text = await ckptOk(dir, 'show', r.id, '--code');
    expect(text).toContain(`git checkout ${head}`);
    expect(text).not.toContain('restore-code');
  });

  it('records dirty code, stores it with --with-code, notes it in Git, and restore-code gives the exact files back', async () => {
    const dir = await gitRepo();
    const head = git(dir, 'rev-parse', 'HEAD').trim();
    // uncommitted work: a modified file, a staged change, a deleted file, a new untracked file
    const trainPy = 'lr = 0.03  # tuned\nprint("train")\n\u00e9\u4e2d\n';
    const netPy = 'class Net:\n    depth = 12\n';
    const utilBytes = Buffer.from([0, 1, 2, 255, 254, 10, 13, 0]);
    await fs.writeFile(path.join(dir, 'train.py'), trainPy);
    await fs.writeFile(path.join(dir, 'models', 'net.py'), netPy);
    git(dir, 'add', 'models/net.py');
    await fs.rm(path.join(dir, 'old.py'));
    await fs.writeFile(path.join(dir, 'util.dat'), utilBytes);

    await writeModel(path.join(dir, 'model.safetensors'), 2);
    const c1 = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'dirty run', '--with-code');
    expect(c1.code.commit).toBe(head);
    expect(c1.code.dirty).toBe(true);
    expect([...c1.code.changed].sort()).toEqual(['models/net.py', 'old.py', 'train.py']);
    expect(c1.code.untracked).toEqual(['util.dat']);
    expect(c1.code.files).toMatch(/^[0-9a-f]{64}$/);
    await writeModel(path.join(dir, 'model.safetensors'), 3);
    const c2 = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'dirty run, later', '--with-code');

    // plain git shows the checkpoint ids on the code commit
    const notes = git(dir, 'log', '--notes=ckpt', '-1', head);
    expect(notes).toContain(c1.id);
    expect(notes).toContain(c2.id);
    expect(git(dir, 'notes', '--ref=ckpt', 'show', head)).toMatch(new RegExp(`^ckpt ${c1.id} \\(main\\) dirty run\\nckpt ${c2.id}`));
    // and ckpt lists them from its side, by any Git revision
    const byCode = await ckptJson(dir, 'log', '--code', 'HEAD');
    expect(byCode.map((e: { id: string }) => e.id)).toEqual([c2.id, c1.id]);
    expect((await ckptJson(dir, 'log', '--code', head.slice(0, 10))).length).toBe(2);

    const show = await ckptOk(dir, 'show', c1.id, '--code');
    expect(show).toContain(`git checkout ${head}`);
    expect(show).toContain(`ckpt restore-code ${c1.id.slice(0, 12)}`);

    // back to the committed code, then restore the uncommitted files
    git(dir, 'reset', '-q', '--hard');
    await fs.rm(path.join(dir, 'util.dat'));
    expect(await fs.readFile(path.join(dir, 'train.py'), 'utf8')).toBe('lr = 0.1\nprint("train")\n');
    const restored = await ckptJson(dir, 'restore-code', c1.id);
    expect(restored.written.map((f: { path: string }) => f.path).sort()).toEqual(['models/net.py', 'train.py', 'util.dat']);
    expect(restored.notRestored).toEqual(['old.py']);
    expect(await fs.readFile(path.join(dir, 'train.py'), 'utf8')).toBe(trainPy);
    expect(await fs.readFile(path.join(dir, 'models', 'net.py'), 'utf8')).toBe(netPy);
    expect(Buffer.compare(await fs.readFile(path.join(dir, 'util.dat')), utilBytes)).toBe(0);

    // into another folder, with a warning that it is not at the recorded commit
    const elsewhere = await tempDir('ckpt-restore-');
    git(elsewhere, 'init', '-q');
    const r = await ckpt(dir, 'restore-code', c1.id, elsewhere);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`git checkout ${head}`);
    expect(await fs.readFile(path.join(elsewhere, 'train.py'), 'utf8')).toBe(trainPy);
  });

  it('without --with-code lists the files but says restore-code has nothing to give back; the config switch turns it on', async () => {
    const dir = await gitRepo();
    await fs.writeFile(path.join(dir, 'train.py'), 'lr = 0.5\n');
    await writeModel(path.join(dir, 'model.safetensors'), 4);
    const c = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'no code stored');
    expect(c.code.dirty).toBe(true);
    expect(c.code.files).toBeUndefined();
    const r = await ckpt(dir, 'restore-code', c.id);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/did not store them.*--with-code/);

    const cfgFile = path.join(dir, '.ckpt', 'config');
    const cfg = JSON.parse(await fs.readFile(cfgFile, 'utf8'));
    await fs.writeFile(cfgFile, JSON.stringify({ ...cfg, withCode: true }));
    const c2 = await ckptJson(dir, 'commit', 'model.safetensors', '-m', 'code stored by config');
    expect(c2.code.files).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('outside Git', () => {
  it('records nothing and says so once', async () => {
    const dir = await tempDir('ckpt-nogit-');
    await ckptOk(dir, 'init');
    await writeModel(path.join(dir, 'a.safetensors'), 5);
    const first = await ckpt(dir, 'commit', 'a.safetensors', '-m', 'one');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr.match(/not in a Git work tree/g)?.length).toBe(1);
    await writeModel(path.join(dir, 'a.safetensors'), 6);
    const second = await ckpt(dir, 'commit', 'a.safetensors', '-m', 'two');
    expect(second.stderr).not.toMatch(/Git/);
    const shown = await ckptJson(dir, 'show', 'HEAD');
    expect(shown.commit.code).toBeUndefined();
    expect(await ckptOk(dir, 'show', 'HEAD', '--code')).toMatch(/no code provenance/);
  });

  it('stays silent with -q and --json', async () => {
    const dir = await tempDir('ckpt-nogit-');
    await ckptOk(dir, 'init');
    await writeModel(path.join(dir, 'a.safetensors'), 7);
    const q = await ckpt(dir, 'commit', 'a.safetensors', '-m', 'quiet', '-q');
    expect(q.stderr).toBe('');
    const j = await ckpt(dir, 'commit', 'a.safetensors', '-m', 'json', '--json');
    expect(j.stderr).toBe('');
  });
});
