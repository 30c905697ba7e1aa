/**
 * The real CLI (built `dist/`) in a child process that reports its own cost: exit code, output,
 * peak RSS and CPU seconds (from process.resourceUsage at exit), and whether it had to be killed
 * for running past a deadline. Hostile-input tests bound time and memory per run with it.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from '../e2e/helpers.js';

export interface MeasuredRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set of the child, MiB. */
  maxRssMiB: number;
  /** User + system CPU seconds of the child. */
  cpuSeconds: number;
  wallMs: number;
  /** Killed at the deadline: the command hung or ran far too long. */
  timedOut: boolean;
}

const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');

const CHILD = `
import { writeSync } from 'node:fs';
const { main } = await import(${JSON.stringify(MAIN)});
const code = await main(JSON.parse(process.env.CKPT_MEASURE_ARGV));
const u = process.resourceUsage();
writeSync(3, JSON.stringify({ code, maxRss: u.maxRSS, cpu: (u.userCPUTime + u.systemCPUTime) / 1e6 }));
process.exit(code);
`;

export function runMeasured(cwd: string, args: string[], timeoutMs = 30_000, env: NodeJS.ProcessEnv = {}): Promise<MeasuredRun> {
  const t0 = Date.now();
  const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', CKPT_AUTHOR: 'hostile <h@test>', CKPT_MEASURE_ARGV: JSON.stringify(args), ...env },
    stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const measure: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => measure.push(b));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const m = measure.length ? (JSON.parse(Buffer.concat(measure).toString('utf8')) as { maxRss: number; cpu: number }) : undefined;
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        maxRssMiB: m ? m.maxRss / 1024 : NaN,
        cpuSeconds: m ? m.cpu : NaN,
        wallMs: Date.now() - t0,
        timedOut,
      });
    });
  });
}

export interface BatchRun {
  argv: string[];
  /** Exit code; 'hung' past the per-run deadline, 'threw' when main() itself threw, 'not run' after a hang. */
  code: number | 'hung' | 'threw' | 'not run';
  stdout: string;
  stderr: string;
  /** The store under `store` was byte-identical before and after the run. */
  unchanged: boolean;
}

/**
 * Runs each command line of `runs` in order in one child process (see batchChild.mjs), in `cwd`,
 * snapshotting `store` around each: many runs for the cost of one Node start.
 */
export function runBatch(cwd: string, store: string, runs: string[][], timeoutMs = 10_000): Promise<BatchRun[]> {
  const child = spawn(process.execPath, [path.join(ROOT, 'test', 'hostile', 'batchChild.mjs')], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', CKPT_AUTHOR: 'hostile <h@test>', CKPT_BATCH: JSON.stringify({ main: MAIN, store, runs, timeoutMs }) },
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  const lines: Buffer[] = [];
  const err: Buffer[] = [];
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => lines.push(b));
  const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs * runs.length + 30_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', () => {
      clearTimeout(killer);
      const done = Buffer.concat(lines)
        .toString('utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as BatchRun);
      for (const argv of runs.slice(done.length)) {
        done.push({ argv, code: 'not run', stdout: '', stderr: Buffer.concat(err).toString('utf8').slice(-500), unchanged: true });
      }
      resolve(done);
    });
  });
}

/** At most `n` of the functions given to the returned runner run at once (for concurrent tests). */
export function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
