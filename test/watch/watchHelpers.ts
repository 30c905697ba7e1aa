/** A `ckpt watch` child process whose stderr a test can follow while it runs. */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CLI, ckptJson } from '../e2e/helpers.js';

export const PYTHON = '/usr/bin/python3';
export const TRAIN_LOOP = path.join(path.dirname(new URL(import.meta.url).pathname), 'train_loop.py');

export interface WatchProcess {
  child: ChildProcess;
  /** stderr so far. */
  log(): string;
  /** "committed" lines so far. */
  commits(): number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then wait for the exit. */
  stop(): Promise<void>;
}

export function startWatch(cwd: string, dir: string, ...args: string[]): WatchProcess {
  const child = spawn(process.execPath, [CLI, 'watch', dir, ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', CKPT_AUTHOR: 'watch <watch@test>' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  return {
    child,
    log: () => err,
    commits: () => err.split('\n').filter((l) => l.startsWith('ckpt watch: committed')).length,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface LoggedCommit {
  id: string;
  message: string;
  meta: { step?: number; epoch?: number; metrics?: Record<string, number>; extra?: Record<string, any> };
}

/** The branch's commits, oldest first. */
export async function history(repo: string, rev = 'HEAD'): Promise<LoggedCommit[]> {
  return ((await ckptJson<LoggedCommit[]>(repo, 'log', rev)) ?? []).reverse();
}

/** Every regular file under `dir`: relative path -> bytes. */
export async function readTree(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await fs.readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.set(path.relative(dir, p), await fs.readFile(p));
    }
  };
  await walk(dir);
  return out;
}

/** Fails naming the first difference between two folders' files. */
export async function expectSameTree(got: string, want: string): Promise<string | undefined> {
  const a = await readTree(got);
  const b = await readTree(want);
  const names = [...new Set([...a.keys(), ...b.keys()])].sort();
  for (const n of names) {
    if (!a.has(n)) return `${n} missing from ${got}`;
    if (!b.has(n)) return `${n} is extra in ${got}`;
    if (!a.get(n)!.equals(b.get(n)!)) return `${n} differs`;
  }
  return undefined;
}
