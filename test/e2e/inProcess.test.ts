/**
 * The CLI's entry point run in process: output goes to the injected streams only, relative paths
 * resolve against the injected folder, and the exit code is returned without being left in
 * process state for the next run.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { Writable } from 'node:stream';
import { main } from '../../src/cli/main.js';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { cleanupTempDirs, randomF32, tempDir } from './helpers.js';
import { ckptIn, runIn, testEnv } from './inProcess.js';

afterAll(cleanupTempDirs);

const model = (seed: number) => writeSafetensors([{ name: 'w', dtype: 'F32', shape: [256], data: randomF32(seed, 256) }]);

describe('main(argv, io) in process', () => {
  it('writes only to the injected streams, resolves paths against the injected folder, and returns each run its own exit code', async () => {
    const dir = await tempDir();
    expect(dir).not.toBe(process.cwd());
    await fs.writeFile(path.join(dir, 'm.safetensors'), model(1));
    const stdout = vi.spyOn(process.stdout, 'write');
    const stderr = vi.spyOn(process.stderr, 'write');
    const exitBefore = process.exitCode;
    try {
      expect((await ckptIn(dir, 'init', '-q')).code).toBe(0);
      const c1 = await ckptIn(dir, 'commit', 'm.safetensors', '-m', 'one', '--json');
      expect(c1.code, c1.stderr).toBe(0);
      expect(JSON.parse(c1.stdout).files[0].path).toBe('m.safetensors');
      await fs.writeFile(path.join(dir, 'm.safetensors'), model(2));
      expect((await ckptIn(dir, 'commit', 'm.safetensors', '-m', 'two')).stdout).toMatch(/\] two\n/);

      // an outcome that is not an error (1), then a run that must not inherit it (0)
      const differs = await ckptIn(dir, 'diff', 'HEAD~1', 'HEAD', '--exit-code', '--no-stats');
      expect(differs.code).toBe(1);
      expect(differs.stdout).toMatch(/changed/);
      expect((await ckptIn(dir, 'diff', 'HEAD', 'HEAD', '--exit-code')).code).toBe(0);
      expect(process.exitCode).toBe(exitBefore);

      // errors and usage mistakes come back as codes and lines on the injected stderr
      const missing = await ckptIn(dir, 'show', 'no-such-rev');
      expect(missing.code).toBe(4);
      expect(missing.stderr).toMatch(/^ckpt: error: .*no-such-rev/);
      const usage = await ckptIn(dir, 'no-such-command');
      expect(usage.code).toBe(2);
      expect(usage.stderr).toMatch(/Unknown argument: no-such-command/);
      const help = await ckptIn(dir, '--help');
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(/Usage: ckpt <command>/);

      // the run's environment, not the process's, signs commits
      await fs.writeFile(path.join(dir, 'm.safetensors'), model(3));
      const signed = await runIn(dir, ['commit', 'm.safetensors', '-m', 'four', '--json'], { CKPT_AUTHOR: 'in-process <ip@test>' });
      expect(signed.code, signed.stderr).toBe(0);
      const log = JSON.parse((await ckptIn(dir, 'show', JSON.parse(signed.stdout).id, '--json')).stdout);
      expect(JSON.stringify(log)).toContain('in-process <ip@test>');

      expect(stdout).not.toHaveBeenCalled();
      expect(stderr).not.toHaveBeenCalled();
    } finally {
      stdout.mockRestore();
      stderr.mockRestore();
    }
  });

  it('runs two commands at once in one process without mixing their output', async () => {
    const a = await tempDir();
    const b = await tempDir();
    await Promise.all([ckptIn(a, 'init'), ckptIn(b, 'init')]);
    const [la, lb] = await Promise.all([ckptIn(a, 'log', '--json'), ckptIn(b, 'status')]);
    expect(JSON.parse(la.stdout)).toEqual([]);
    expect(lb.stdout).toMatch(/no commits yet/);
    expect(lb.stdout).not.toMatch(/^\[/);
  });

  it('draws progress bars on the injected stderr when it is a terminal', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'm.safetensors'), writeSafetensors([{ name: 'w', dtype: 'F32', shape: [1 << 20], data: randomF32(9, 1 << 20) }]));
    expect((await ckptIn(dir, 'init')).code).toBe(0);
    const seen: string[] = [];
    const tty = Object.assign(
      new Writable({
        write(chunk, _enc, done) {
          seen.push(String(chunk));
          done();
        },
      }),
      { isTTY: true, columns: 80, rows: 24, cursorTo: () => true, clearLine: () => true, moveCursor: () => true },
    );
    const quiet = new Writable({ write: (_c, _e, done) => done() });
    const processStderr = vi.spyOn(process.stderr, 'write');
    try {
      const code = await main(['commit', 'm.safetensors', '-m', 'bar'], { stdout: quiet, stderr: tty, cwd: dir, env: testEnv() });
      expect(code).toBe(0);
      expect(seen.join('')).toMatch(/commit \[/);
      expect(processStderr).not.toHaveBeenCalled();
    } finally {
      processStderr.mockRestore();
    }
  });
});
