/**
 * `ckpt log --graph` draws branches and merges the way `git log --graph` does, with each merge's
 * recipe; `ckpt show` prints the recipe too.
 */
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { arithmeticMerge } from '../../src/merge/arithmeticMerge.js';
import { threeWayMerge } from '../../src/merge/threeWayMerge.js';
import { drawGraph } from '../../src/repo/historyGraph.js';
import { ckptOk, cleanupTempDirs } from '../e2e/helpers.js';
import { commitAs, MERGE_FIXTURES, newRepo } from './mergeHelpers.js';

afterAll(cleanupTempDirs);

const fx = (n: string) => path.join(MERGE_FIXTURES, `${n}.f32.safetensors`);
const strip = (text: string) => text.replace(/\b[0-9a-f]{12}\b/g, 'ID').replace(/ckpt \d+\.\d+\.\d+[-+.\w]*/g, 'ckpt V');

describe('log --graph', () => {
  it('draws a branch, a three-way merge and an arithmetic merge with its recipe', async () => {
    const repo = await newRepo();
    await commitAs(repo, fx('base'), 'model.safetensors', 'base');
    await commitAs(repo, fx('ft_b'), 'model.safetensors', 'tune b', 'x');
    await commitAs(repo, fx('ft_a'), 'model.safetensors', 'tune a');
    await threeWayMerge(repo, { theirs: 'x', default: 'average' });
    const graph = strip(await ckptOk(repo.root, 'log', '--graph', '--all'));
    expect(graph.split('\n')).toEqual([
      '* ID (main) merge x into main [three-way base=ID default=average ckpt V]',
      '|\\',
      '* | ID tune a',
      '| * ID (x) tune b',
      '|/',
      '* ID base',
      '',
    ]);
    const s = await arithmeticMerge(repo, { method: 'dare-ties', revs: ['HEAD~1', 'x'], density: 0.5, seed: 4 });
    const top = strip(await ckptOk(repo.root, 'log', '--graph', '-n', '1'));
    expect(top).toBe('* ID (main) merge dare-ties of HEAD~1, x [dare-ties weights=1,1 density=0.5 normalize=false seed=4 base=ID ckpt V]\n');
    const shown = await ckptOk(repo.root, 'show', s.id);
    expect(strip(shown)).toMatch(/^merge {2}dare-ties weights=1,1 density=0\.5 normalize=false seed=4 base=ID ckpt V$/m);
    expect(shown).toMatch(new RegExp(`^parent ${s.parents.join(' ')}$`, 'm'));
  });

  it('lanes: an octopus merge opens one lane per further parent, and lanes join where they meet', () => {
    const c = (id: string, parents: string[], time: number) => ({ id, commit: { type: 'commit' as const, tree: '', parents, message: id, author: '', time, meta: {} } });
    const rows = drawGraph([c('m', ['a', 'b', 'd'], 9), c('d', ['r'], 8), c('b', ['r'], 7), c('a', ['r'], 6), c('r', [], 1)]);
    expect(rows.map((r) => r.graph + (r.id ? ` ${r.id}` : ''))).toEqual(['* m', '|\\ \\', '| | * d', '| * | b', '| |/', '* | a', '|/', '* r']);
  });
});
