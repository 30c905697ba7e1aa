/**
 * Runs the `git` program in a work tree: its stdout, or undefined when there is no `git` or it
 * fails (an unsafe directory, a corrupt index), so the caller falls back to isomorphic-git.
 */
import { execFile } from 'node:child_process';

export interface RunGitOptions {
  /** Written to git's stdin. */
  input?: string;
  /** Added to the environment. */
  env?: Record<string, string>;
  /** Exit codes besides 0 that are answers, not failures (`git notes show` exits 1: no note). */
  okExitCodes?: number[];
}

export function runGit(root: string, args: string[], opts: RunGitOptions = {}): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const child = execFile(
      'git',
      args,
      // no optional locks: ckpt reads the index and never rewrites it under the user's git
      { cwd: root, encoding: 'buffer', maxBuffer: 1 << 30, env: { ...process.env, GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C', ...opts.env } },
      (err, stdout) => resolve(!err || opts.okExitCodes?.includes(err.code as unknown as number) ? stdout : undefined),
    );
    child.on('error', () => resolve(undefined));
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input);
  });
}
