/**
 * Acceptance 4: the Python client's own tests (python/tests, standard unittest) run under
 * `npm test` against this build of the CLI, with Debian's Python and torch.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT } from '../e2e/helpers.js';
import { PYTHON } from './watchHelpers.js';

describe('python client', () => {
  it('passes its unittest suite', () => {
    const r = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-v', path.join('python', 'tests')], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, CKPT_BIN: CLI, CKPT_AUTHOR: 'py <py@test>', PYTHONDONTWRITEBYTECODE: '1' },
      timeout: 230_000,
    });
    const summary = r.stderr.split('\n').filter((l) => / \.\.\. |^Ran |^OK|^FAILED/.test(l));
    process.stdout.write(`python/tests:\n${summary.join('\n')}\n${r.stdout}`);
    expect(r.status, r.stderr).toBe(0);
    // unittest exits 0 when it finds no test at all: the run must have found the client's tests
    const ran = /^Ran (\d+) tests?/m.exec(r.stderr);
    expect(Number(ran?.[1] ?? 0), r.stderr).toBeGreaterThanOrEqual(8);
  }, 240_000);
});
