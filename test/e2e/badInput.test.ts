/**
 * Acceptance 3: malformed and malicious input is refused with a typed error that names the file,
 * exit code 3, and a store left exactly as it was: every file under .ckpt/ byte-identical, no
 * file added or removed (not even in tmp/ or locks/).
 */
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { badFixtures, ckpt, ckptJson, cleanupTempDirs, escapeRegExp, FIXTURES, newRepo, snapshot, tempDir } from './helpers.js';

const PWNED_DIR = '/tmp';
const pwned = () => readdirSync(PWNED_DIR).filter((f) => f.startsWith('ckpt-pwned-')).sort();

let template: string;
let pwnedBefore: string[];

beforeAll(async () => {
  pwnedBefore = pwned();
  template = await newRepo();
  await fs.copyFile(path.join(FIXTURES, 'safetensors', 'all_dtypes.safetensors'), path.join(template, 'good.safetensors'));
  await ckptJson(template, 'commit', 'good.safetensors', '-m', 'a good commit first');
});
afterAll(cleanupTempDirs);

/** A copy of the template work tree and store: one good commit, nothing else. */
async function repoWithOneCommit(): Promise<string> {
  const dir = await tempDir();
  await fs.cp(template, dir, { recursive: true });
  return dir;
}

/** Commits `args` expecting a refusal; returns stderr after checking the store did not change. */
async function refused(dir: string, args: string[], exitCode = 3): Promise<string> {
  const store = path.join(dir, '.ckpt');
  const before = await snapshot(store);
  const r = await ckpt(dir, 'commit', ...args);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.code, r.stderr).toBe(exitCode);
  expect(r.stdout).toBe('');
  expect(await snapshot(store)).toEqual(before);
  return r.stderr;
}

const groups = badFixtures();

describe('malformed files', () => {
  it('finds bad fixtures of several formats', () => {
    expect(groups.map((g) => g.format)).toContain('safetensors');
    expect(groups.reduce((n, g) => n + g.cases.length, 0)).toBeGreaterThan(50);
  });

  for (const g of groups) {
    describe(g.format, () => {
      it('every file in bad/ has an entry in faults.json', () => {
        expect(g.unlisted).toEqual([]);
      });

      describe.concurrent.each(g.cases.map((c) => [path.basename(c.file), c] as const))('%s', (_name, c) => {
        it('is refused with exit 3, an error naming the file and the fault, and an unchanged store', async () => {
          const dir = await repoWithOneCommit();
          const stderr = await refused(dir, [c.file, '-m', 'bad']);
          expect(stderr).toContain(c.file);
          expect(stderr).toMatch(c.pattern);
          expect(stderr.trim().split('\n')).toHaveLength(1);
          const log = await ckptJson<unknown[]>(dir, 'log');
          expect(log).toHaveLength(1);
        });
      });
    });
  }

  it('a folder with one bad file among good ones stores nothing at all', async () => {
    const dir = await repoWithOneCommit();
    const folder = path.join(dir, 'run');
    await fs.mkdir(folder);
    await fs.copyFile(path.join(FIXTURES, 'safetensors', 'many_tensors.safetensors'), path.join(folder, 'a.safetensors'));
    await fs.copyFile(path.join(FIXTURES, 'safetensors', 'bad', 'overlap.safetensors'), path.join(folder, 'b.safetensors'));
    await fs.copyFile(path.join(FIXTURES, 'safetensors', 'large_tensor.safetensors'), path.join(folder, 'c.safetensors'));
    const stderr = await refused(dir, ['run', '-m', 'mixed']);
    expect(stderr).toContain(path.join('run', 'b.safetensors'));
    expect(stderr).toMatch(/overlaps/i);
  });

  it('--format opaque stores a file no parser accepts, on purpose, exactly', async () => {
    const dir = await repoWithOneCommit();
    const bad = path.join(FIXTURES, 'safetensors', 'bad', 'short_file.safetensors');
    const c = await ckptJson(dir, 'commit', bad, '-m', 'kept as bytes', '--format', 'opaque');
    expect(c.files[0].format).toBe('opaque');
    await ckptJson(dir, 'checkout', c.id, '-o', 'back.bin');
    expect(readFileSync(path.join(dir, 'back.bin')).equals(readFileSync(bad))).toBe(true);
  });

  it('--json puts the error as JSON on stdout', async () => {
    const dir = await repoWithOneCommit();
    const bad = path.join(FIXTURES, 'safetensors', 'bad', 'gap.safetensors');
    const r = await ckpt(dir, 'commit', bad, '-m', 'bad', '--json');
    expect(r.code).toBe(3);
    const doc = JSON.parse(r.stdout) as { error: { code: string; file: string; offset: number } };
    expect(doc.error.code).toBe('E_FORMAT');
    expect(doc.error.file).toBe(bad);
    expect(typeof doc.error.offset).toBe('number');
  });
});

describe('unsafe pickles', () => {
  const dir = path.join(FIXTURES, 'pytorch', 'unsafe');
  const cases = JSON.parse(readFileSync(path.join(dir, 'unsafe.json'), 'utf8')) as { file: string; global: string }[];

  it('has cases', () => expect(cases.length).toBeGreaterThan(3));

  describe.concurrent.each(cases.map((c) => [c.file, c] as const))('%s', (_name, c) => {
    it('is refused naming the global; stored only when allowed, and never run', async () => {
      const repo = await repoWithOneCommit();
      const file = path.join(dir, c.file);
      const stderr = await refused(repo, [file, '-m', 'unsafe']);
      expect(stderr).toContain(file);
      expect(stderr).toMatch(new RegExp(`\\b${escapeRegExp(c.global)}\\b`));
      expect(stderr).toMatch(/--allow-unsafe-pickle/);
      expect(pwned()).toEqual(pwnedBefore);

      // diff parses a file not committed the same way: refused, never run, store untouched
      const before = await snapshot(path.join(repo, '.ckpt'));
      const d = await ckpt(repo, 'diff', 'HEAD', file);
      expect(d.code).toBe(3);
      expect(d.stderr).toMatch(new RegExp(`\\b${escapeRegExp(c.global)}\\b`));
      expect(await snapshot(path.join(repo, '.ckpt'))).toEqual(before);
      expect(pwned()).toEqual(pwnedBefore);

      // explicitly allowed: stored as data, still never evaluated, and the user is told
      await fs.copyFile(file, path.join(repo, c.file));
      const ok = await ckptJson(repo, 'commit', c.file, '-m', 'allowed', '--allow-unsafe-pickle');
      const shown = await ckptJson<{ files: { warnings?: string[] }[] }>(repo, 'show', ok.id);
      expect(JSON.stringify(shown.files[0].warnings ?? [])).toContain(c.global);
      await ckptJson(repo, 'diff', 'HEAD~1', ok.id);
      await ckptJson(repo, 'checkout', ok.id, '-o', 'back.pt');
      expect(readFileSync(path.join(repo, 'back.pt')).equals(readFileSync(file))).toBe(true);
      expect(pwned()).toEqual(pwnedBefore);
    });
  });
});
