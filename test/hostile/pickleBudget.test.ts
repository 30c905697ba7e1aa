/**
 * 23 crafted pickles against the whole commit path: DAGs through the memo (lists, dicts, tuples,
 * sets, OrderedDicts, tuple keys), padding a DAG multiplies, long strings and keys, long decimal
 * and binary integers, deep nesting, many small values, quadratic argument copies. Each is made by
 * fixtures/hostile-pickles/make_hostile_pickles.py and committed by the real CLI in a child that
 * reports its peak RSS and CPU time: each is refused with E_FORMAT naming the file and an offset,
 * or stored, within 10 s of CPU and 500 MiB, and a refusal leaves the store as it was.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, ckptOk, FIXTURES, snapshot, tempDir } from '../e2e/helpers.js';
import { limiter, runMeasured } from './measuredCli.js';

/** What each case must do: refused (with a word of the reason), or stored. */
const EXPECT: Record<string, { refused: RegExp } | 'stored'> = {
  dag_lists_d40_pad1m: { refused: /expands to more than/ },
  dag_dicts_d30_pad2m: { refused: /expands to more than/ },
  dag_tuples_d40_pad1m: { refused: /expands to more than/ },
  dag_sets_d40_pad1m: { refused: /expands to more than/ },
  dag_tuple_keys_d40: 'stored',
  dag_ordereddict_d30_pad1m: { refused: /expands to more than/ },
  dag_lists_d60_nopad: { refused: /expands to more than/ },
  dag_tuples_d19_under_budget: 'stored',
  dag_dicts_d18_under_budget: 'stored',
  shared_refs_1m_x2000: { refused: /expands to more than/ },
  shared_refs_4m_x500: { refused: /expands to more than/ },
  shared_dict_values_2m_x5000: 'stored',
  long_string_16m: 'stored',
  long_key_path_d400_64k: { refused: /expands to more than/ },
  long_decimal_LONG_4m: { refused: /decimal text/ },
  long_decimal_INT_4m: { refused: /decimal text/ },
  long_binary_LONG4_8m: { refused: /LONG4 of/ },
  deep_lists_100k: { refused: /nests deeper/ },
  deep_marks_100k: { refused: /MARK nesting/ },
  many_ints_5m: { refused: /expands to more than/ },
  many_lists_4m: { refused: /expands to more than/ },
  quadratic_reduce_200k: { refused: /expands to more than/ },
  plain_state_100k: 'stored',
};

let dir: string;
const slot = limiter(2);

beforeAll(() => {
  return tempDir('ckpt-pickles-').then((d) => {
    dir = d;
    const made = spawnSync('/usr/bin/python3', [path.join(FIXTURES, 'hostile-pickles', 'make_hostile_pickles.py'), dir], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`make_hostile_pickles.py failed: ${made.stderr}`);
  });
});

afterAll(cleanupTempDirs);

describe.concurrent('crafted pickles are refused or stored within 10 s of CPU and 500 MiB', () => {
  it('made every case', () => {
    const names = readdirSync(dir).filter((f) => f.endsWith('.pt'));
    expect(names.map((f) => f.replace(/\.pt$/, '')).sort()).toEqual(Object.keys(EXPECT).sort());
  });

  for (const [name, want] of Object.entries(EXPECT)) {
    it(name, async () => {
      // a store of its own, so a refusal can be checked against the store as it was
      const repo = path.join(dir, `repo-${name}`);
      await mkdir(repo);
      await ckptOk(repo, 'init', '-q');
      const before = await snapshot(path.join(repo, '.ckpt'));
      const r = await slot(() => runMeasured(repo, ['commit', path.join(dir, `${name}.pt`), '-m', name, '--json'], 60_000));
      const note = `${name}: exit ${r.code}, ${r.cpuSeconds.toFixed(2)} s CPU, ${r.wallMs} ms wall, ${r.maxRssMiB.toFixed(0)} MiB\n${r.stderr.slice(0, 600)}`;
      if (process.env.CKPT_PICKLE_REPORT) console.log(note.split('\n')[0]);
      expect(r.timedOut, note).toBe(false);
      expect(r.cpuSeconds, note).toBeLessThan(10);
      expect(r.maxRssMiB, note).toBeLessThan(500);
      expect(r.stderr, note).not.toMatch(/^\s+at /m);
      if (want === 'stored') {
        expect(r.code, note).toBe(0);
      } else {
        expect(r.code, note).toBe(3);
        const err = JSON.parse(r.stdout).error as { code: string; file: string; offset: number; message: string };
        expect(err.code).toBe('E_FORMAT');
        expect(err.file).toContain(`${name}.pt`);
        expect(err.offset).toBeGreaterThanOrEqual(0);
        expect(err.message, note).toMatch(want.refused);
        expect(await snapshot(path.join(repo, '.ckpt'))).toEqual(before);
      }
    }, 180_000);
  }
});
