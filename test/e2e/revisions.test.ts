/**
 * Acceptance 6: naming commits (HEAD~N, branches, tags, id prefixes, best:<metric>), managing
 * refs, `ckpt status`, and `--json` output that scripts can parse.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Commit } from '../../src/core/objects.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { Repository } from '../../src/repo/repository.js';
import { MetaStore } from '../../src/store/metaStore.js';
import { ckpt, ckptJson, cleanupTempDirs, newRepo, randomF32, tempDir } from './helpers.js';

afterAll(cleanupTempDirs);

const LOSSES = [0.9, 0.5, 0.7, 0.3, 0.6];
const ACCURACY = [0.2, 0.6, 0.4, 0.5, 0.55];

let dir: string;
/** Commit ids, oldest first. */
const ids: string[] = [];

async function writeModel(file: string, seed: number): Promise<void> {
  await fs.writeFile(file, writeSafetensors([{ name: 'w', dtype: 'F32', shape: [64, 64], data: randomF32(seed, 4096) }]));
}

async function rev(r: string): Promise<string> {
  return (await ckptJson<{ id: string }>(dir, 'show', r)).id;
}

/** Runs a command that must fail with `code`; returns stderr. */
async function fails(code: number, ...args: string[]): Promise<string> {
  const r = await ckpt(dir, ...args);
  expect(r.code, `ckpt ${args.join(' ')}: ${r.stderr}`).toBe(code);
  expect(r.stderr).not.toMatch(/internal error/);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  return r.stderr;
}

beforeAll(async () => {
  dir = await newRepo();
  for (let i = 0; i < LOSSES.length; i++) {
    await writeModel(path.join(dir, 'model.safetensors'), i + 1);
    const c = await ckptJson(dir, 'commit', 'model.safetensors', '-m', `step ${i}`, '--step', String(i * 100),
      '--metric', `val_loss=${LOSSES[i]}`, '--metric', `acc=${ACCURACY[i]}`);
    ids.push(c.id);
  }
});

describe('revisions', () => {
  it('HEAD, @, latest, HEAD~N, HEAD^ and chains of them', async () => {
    const n = ids.length;
    expect(await rev('HEAD')).toBe(ids[n - 1]);
    expect(await rev('@')).toBe(ids[n - 1]);
    expect(await rev('latest')).toBe(ids[n - 1]);
    for (let k = 0; k < n; k++) expect(await rev(`HEAD~${k}`)).toBe(ids[n - 1 - k]);
    expect(await rev('HEAD^')).toBe(ids[n - 2]);
    expect(await rev('HEAD~')).toBe(ids[n - 2]);
    expect(await rev('HEAD~1^~1')).toBe(ids[n - 4]);
    expect(await fails(4, 'show', `HEAD~${n}`)).toMatch(/fewer commits/);
  });

  it('full ids and unique prefixes of 4 or more characters; shorter ones are not ids', async () => {
    for (const id of ids) {
      expect(await rev(id)).toBe(id);
      // the shortest prefix of at least 4 that no other commit shares
      let len = 4;
      while (ids.some((o) => o !== id && o.startsWith(id.slice(0, len)))) len++;
      expect(await rev(id.slice(0, len))).toBe(id);
    }
    expect(await fails(4, 'show', ids[0].slice(0, 3))).toMatch(/not found.*revision/i);
  });

  it('unknown revisions exit 4 with a clear message', async () => {
    expect(await fails(4, 'show', 'no-such-branch')).toMatch(/not found: revision no-such-branch/);
    expect(await fails(4, 'show', 'f'.repeat(64))).toMatch(/not found/);
    expect(await fails(4, 'checkout', 'v9.9', '-o', 'x.safetensors')).toMatch(/v9\.9/);
    expect(await fails(4, 'log', 'nope')).toMatch(/nope/);
  });

  it('an ambiguous prefix exits 4 and lists the candidates', async () => {
    // Two commit objects whose ids share 4 hex digits: found by hashing candidates, then stored.
    const repo = await Repository.open(dir);
    const head = await repo.readCommit(ids[ids.length - 1]);
    const seen = new Map<string, { id: string; commit: Commit }>();
    let pair: { id: string; commit: Commit }[] | undefined;
    for (let i = 0; !pair; i++) {
      const commit: Commit = { ...head, parents: [ids[0]], message: `probe ${i}` };
      const { id } = MetaStore.encode(commit);
      const other = seen.get(id.slice(0, 4));
      if (other) pair = [other, { id, commit }];
      else seen.set(id.slice(0, 4), { id, commit });
    }
    for (const p of pair) await repo.store.meta.put(p.commit);
    const prefix = pair[0].id.slice(0, 4);
    const err = await fails(4, 'show', prefix);
    expect(err).toMatch(/ambiguous/);
    for (const p of pair) expect(err).toContain(p.id.slice(0, 12));
    // a longer prefix tells them apart
    let len = 5;
    while (pair[1].id.startsWith(pair[0].id.slice(0, len))) len++;
    expect(await rev(pair[0].id.slice(0, len))).toBe(pair[0].id);
  });

  it('best:<metric> picks the lowest loss and the highest accuracy; :min and :max override', async () => {
    expect(await rev('best:val_loss')).toBe(ids[LOSSES.indexOf(Math.min(...LOSSES))]);
    expect(await rev('best:acc')).toBe(ids[ACCURACY.indexOf(Math.max(...ACCURACY))]);
    expect(await rev('best:val_loss:max')).toBe(ids[LOSSES.indexOf(Math.max(...LOSSES))]);
    expect(await rev('best:acc:min')).toBe(ids[ACCURACY.indexOf(Math.min(...ACCURACY))]);
    expect(await fails(4, 'show', 'best:bleu')).toMatch(/bleu/);
  });
});

describe('branches and tags', () => {
  it('create at a revision, list, resolve, refuse duplicates, delete', async () => {
    const created = await ckptJson(dir, 'branch', 'exp', 'HEAD~2');
    expect(created).toEqual({ created: 'exp', id: ids[ids.length - 3] });
    expect(await rev('exp')).toBe(ids[ids.length - 3]);
    expect(await rev('exp~1')).toBe(ids[ids.length - 4]);
    const list = await ckptJson<{ name: string; id: string; current: boolean }[]>(dir, 'branch');
    expect(list).toEqual([
      { name: 'exp', id: ids[ids.length - 3], current: false },
      { name: 'main', id: ids[ids.length - 1], current: true },
    ]);
    expect(await fails(2, 'branch', 'exp')).toMatch(/already exists/);
    expect(await fails(2, 'branch', 'bad name~1')).toMatch(/invalid branch name/);
    expect(await fails(2, 'branch', '-d', 'main')).toMatch(/current branch/);
    expect(await ckptJson(dir, 'branch', '-d', 'exp')).toEqual({ deleted: 'exp', was: ids[ids.length - 3] });
    expect(await fails(4, 'show', 'exp')).toMatch(/not found/);
    expect(await fails(4, 'branch', '-d', 'exp')).toMatch(/exp/);
  });

  it('tags name a commit, show in the log, refuse duplicates and can be deleted', async () => {
    await ckptJson(dir, 'tag', 'v1', ids[1]);
    await ckptJson(dir, 'tag', 'best', 'best:val_loss');
    expect(await rev('v1')).toBe(ids[1]);
    expect(await rev('best')).toBe(ids[3]);
    expect(await ckptJson(dir, 'tag')).toEqual([
      { name: 'best', id: ids[3], current: false },
      { name: 'v1', id: ids[1], current: false },
    ]);
    const log = await ckptJson<{ id: string; refs: string[] }[]>(dir, 'log');
    expect(log.find((e) => e.id === ids[1])!.refs).toContain('tag: v1');
    expect(await fails(2, 'tag', 'v1')).toMatch(/already exists/);
    await ckptJson(dir, 'tag', '-d', 'v1');
    await ckptJson(dir, 'tag', '-d', 'best');
    expect(await fails(4, 'show', 'v1')).toMatch(/not found/);
  });

  it('commit --branch onto a new branch starts it at HEAD, keeping the history', async () => {
    const before = await ckptJson<{ id: string }[]>(dir, 'log');
    await writeModel(path.join(dir, 'side.safetensors'), 99);
    const c = await ckptJson(dir, 'commit', 'side.safetensors', '-m', 'side', '--branch', 'side');
    expect(c.branch).toBe('refs/heads/side');
    const side = await ckptJson<{ id: string; parents: string[] }[]>(dir, 'log', 'side');
    expect(side.map((e) => e.id)).toEqual([c.id, ...before.map((e) => e.id)]);
    // main did not move
    expect(await rev('main')).toBe(ids[ids.length - 1]);
    const again = await ckptJson(dir, 'commit', 'side.safetensors', '-m', 'side 2', '--branch', 'side');
    expect(await rev('side~1')).toBe(c.id);
    expect(await rev('side')).toBe(again.id);
    await ckptJson(dir, 'branch', '-d', 'side');
  });
});

describe('status', () => {
  it('reports unchanged, modified and missing files against HEAD', async () => {
    const work = await newRepo();
    await fs.mkdir(path.join(work, 'ckpts'));
    await writeModel(path.join(work, 'ckpts', 'a.safetensors'), 1);
    await writeModel(path.join(work, 'ckpts', 'b.safetensors'), 2);
    await writeModel(path.join(work, 'ckpts', 'c.safetensors'), 3);
    expect(await ckptJson(work, 'status')).toEqual({ branch: 'main', head: null, files: [] });
    const c = await ckptJson(work, 'commit', 'ckpts', '-m', 'three files');
    const clean = await ckptJson(work, 'status');
    expect(clean).toEqual({
      branch: 'main',
      head: c.id,
      files: [
        { path: 'ckpts/a.safetensors', state: 'unchanged' },
        { path: 'ckpts/b.safetensors', state: 'unchanged' },
        { path: 'ckpts/c.safetensors', state: 'unchanged' },
      ],
    });
    // same size, one byte different: only a hash tells
    const b = await fs.readFile(path.join(work, 'ckpts', 'b.safetensors'));
    b[b.length - 1] ^= 1;
    await fs.writeFile(path.join(work, 'ckpts', 'b.safetensors'), b);
    await fs.rm(path.join(work, 'ckpts', 'c.safetensors'));
    expect((await ckptJson(work, 'status')).files).toEqual([
      { path: 'ckpts/a.safetensors', state: 'unchanged' },
      { path: 'ckpts/b.safetensors', state: 'modified' },
      { path: 'ckpts/c.safetensors', state: 'missing' },
    ]);
    const text = (await ckpt(work, 'status')).stdout;
    expect(text).toMatch(/modified\s+ckpts\/b\.safetensors/);
    expect(text).toMatch(/missing\s+ckpts\/c\.safetensors/);
    // checkout restores the work tree
    await ckptJson(work, 'checkout', 'HEAD');
    expect((await ckptJson<{ files: { state: string }[] }>(work, 'status')).files.map((f) => f.state)).toEqual([
      'unchanged',
      'unchanged',
      'unchanged',
    ]);
  });
});

describe('--json', () => {
  it('every command prints exactly one JSON document on stdout, errors included', async () => {
    const work = await tempDir();
    const run = async (args: string[], code = 0) => {
      const r = await ckpt(work, ...args, '--json');
      expect(r.code, `ckpt ${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(() => JSON.parse(r.stdout), `stdout of ckpt ${args.join(' ')}:\n${r.stdout}`).not.toThrow();
      expect(r.stdout.trim().startsWith('{') || r.stdout.trim().startsWith('[')).toBe(true);
      return JSON.parse(r.stdout) as Record<string, any>;
    };
    expect((await run(['log'], 4)).error.code).toBe('E_NOT_A_REPO');
    expect((await run(['init', '--chunk-size', '65536'])).chunkSize).toBe(65536);
    expect(await run(['log'])).toEqual([]);
    await writeModel(path.join(work, 'm.safetensors'), 5);
    const c = await run(['commit', 'm.safetensors', '-m', 'one', '--step', '7', '--metric', 'val_loss=0.25', '--param', 'lr=0.001']);
    expect(c.stats.chunks).toBeGreaterThan(0);
    const shown = await run(['show']);
    expect(shown.commit.meta).toEqual({ step: 7, metrics: { val_loss: 0.25 }, params: { lr: 0.001 } });
    expect((await run(['log']))[0].id).toBe(c.id);
    expect((await run(['checkout', 'HEAD', '-o', 'out.safetensors'])).commit).toBe(c.id);
    expect((await run(['status'])).files).toEqual([{ path: 'm.safetensors', state: 'unchanged' }]);
    expect(await run(['branch'])).toEqual([{ name: 'main', id: c.id, current: true }]);
    expect((await run(['branch', 'b2'])).created).toBe('b2');
    expect((await run(['tag', 't1'])).created).toBe('t1');
    expect(await run(['tag'])).toEqual([{ name: 't1', id: c.id, current: false }]);
    expect((await run(['show', 'nope'], 4)).error.code).toBe('E_NOT_FOUND');
    expect((await run(['commit', 'missing.safetensors', '-m', 'x'], 4)).error.code).toBe('E_NOT_FOUND');
    expect((await run(['commit', 'm.safetensors', '-m', 'x', '--metric', 'loss=abc'], 2)).error.code).toBe('E_USAGE');
  });
});
