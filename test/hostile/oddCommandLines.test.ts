/**
 * Command lines a careless user or a script with a bug would type: numbers that are not numbers
 * (or are Infinity), zero jobs, names longer than a file name may be, an output path under a
 * file, an output folder written with a trailing slash, a path with a dangling symlink, a store
 * whose config cannot be read. Each is refused with a typed error and one clear line (never exit
 * 70 and a stack trace, never a value stored as NaN or Infinity), and a refusal changes nothing.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ckptJson, ckptOk, cleanupTempDirs, tempDir, writeBigSafetensors } from '../e2e/helpers.js';
import { runBatch, type BatchRun } from './measuredCli.js';

const long = (n: number, c = 'b') => c.repeat(n);

/** [command line, expected exit code, what stderr must say]. */
const CASES: Array<[string[], number, RegExp]> = [
  [['commit', 'm.safetensors', '-m', 'x', '--step', 'abc'], 2, /--step expects a whole number, got "abc"/],
  [['commit', 'm.safetensors', '-m', 'x', '--step', '1.5'], 2, /--step expects a whole number/],
  [['commit', 'm.safetensors', '-m', 'x', '--epoch', 'abc'], 2, /--epoch expects a finite number/],
  [['commit', 'm.safetensors', '-m', 'x', '--metric', 'loss=1e400'], 2, /metric loss must be a finite number, got "1e400"/],
  [['commit', 'm.safetensors', '-m', 'x', '--metric', 'loss=nan'], 2, /metric loss must be a finite number/],
  [['log', '-n', 'abc'], 2, /--max-count expects a whole number >= 0, got "abc"/],
  [['log', '-n', '-1'], 2, /--max-count expects a whole number >= 0/],
  [['fetch', '-j', '0'], 2, /--jobs expects a whole number >= 1, got "0"/],
  [['fetch', '-j', 'abc'], 2, /--jobs expects a whole number >= 1/],
  [['branch', long(256)], 2, /ref name too long/],
  [['tag', long(300)], 2, /ref name too long/],
  [['branch', long(130, 'é')], 2, /ref name too long/], // 130 characters, 260 bytes
  [['checkout', 'HEAD', '-o', 'afile/x.safetensors'], 8, /afile.*a file is in the way/],
  [['diff', 'HEAD', './withdangling'], 8, /withdangling[/\\]gone.*does not exist/],
];

let repo: string;
let store: string;
let runs: BatchRun[];
let before: string;

beforeAll(async () => {
  repo = await tempDir('ckpt-odd-');
  store = path.join(repo, '.ckpt');
  await writeBigSafetensors(path.join(repo, 'm.safetensors'), [{ name: 'w', count: 2000, seed: 9 }]);
  await ckptOk(repo, 'init', '-q');
  await ckptOk(repo, 'commit', 'm.safetensors', '-m', 'one', '--step', '1', '-q');
  await fs.writeFile(path.join(repo, 'afile'), 'a file, not a folder\n');
  await fs.mkdir(path.join(repo, 'withdangling'));
  await fs.symlink(path.join(repo, 'nowhere'), path.join(repo, 'withdangling', 'gone'));
  before = JSON.stringify(await ckptJson(repo, 'log'));
  runs = await runBatch(repo, store, CASES.map(([argv]) => argv), 15_000);
});
afterAll(cleanupTempDirs);

describe('odd command lines are refused cleanly', () => {
  CASES.forEach(([argv, code, says], i) => {
    it(`ckpt ${argv.join(' ').slice(0, 70)}`, () => {
      const r = runs[i];
      const note = `exit ${r.code}\n${r.stderr}`;
      expect(r.code, note).toBe(code);
      expect(r.stderr, note).toMatch(/^ckpt: error: /);
      expect(r.stderr, note).toMatch(says);
      expect(r.stderr, note).not.toMatch(/^\s+at /m);
      expect(r.unchanged, `${note}\nthe store changed`).toBe(true);
    });
  });

  it('nothing was committed by the refused commits: no NaN or Infinity in the history', async () => {
    expect(JSON.stringify(await ckptJson(repo, 'log'))).toBe(before);
  });

  it('checkout -o out/ (a trailing slash, no folder yet) writes into a folder', async () => {
    await ckptOk(repo, 'checkout', 'HEAD', '-o', 'out/', '-q');
    expect((await fs.stat(path.join(repo, 'out'))).isDirectory()).toBe(true);
    const back = await fs.readFile(path.join(repo, 'out', 'm.safetensors'));
    expect(back.equals(await fs.readFile(path.join(repo, 'm.safetensors')))).toBe(true);
  });

  it('log -n 1 still works', async () => {
    expect(await ckptJson<unknown[]>(repo, 'log', '-n', '1')).toHaveLength(1);
  });
});

describe('an unreadable config is a damaged store, not "no ckpt store", for diff as for every command', () => {
  it('diff of one path in a store whose config is a folder exits 5 naming it, not 2 as a usage error', async () => {
    const dir = await tempDir('ckpt-odd-cfg-');
    await writeBigSafetensors(path.join(dir, 'm.safetensors'), [{ name: 'w', count: 100, seed: 1 }]);
    await ckptOk(dir, 'init', '-q');
    await ckptOk(dir, 'commit', 'm.safetensors', '-m', 'one', '-q');
    await fs.rm(path.join(dir, '.ckpt', 'config'));
    await fs.mkdir(path.join(dir, '.ckpt', 'config'));
    const [r, st] = await runBatch(dir, path.join(dir, '.ckpt'), [['diff', 'm.safetensors'], ['status']]);
    for (const x of [r, st]) {
      expect(x.code, x.stderr).toBe(5);
      expect(x.stderr).toMatch(/\.ckpt[/\\]config is a folder, not a file/);
      expect(x.stderr).not.toMatch(/no ckpt store|not in a ckpt repository/);
    }
  });
});
