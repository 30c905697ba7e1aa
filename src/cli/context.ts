/** What every command needs: the repository (found from the current directory) and output. */
import * as path from 'node:path';
import { UsageError } from '../core/errors.js';
import { Repository } from '../repo/repository.js';
import { Output, processIo, type CliIo, type GlobalFlags } from './output.js';
import type { StoreRun } from './storeOption.js';

/**
 * One run of the CLI, handed to every command by `main` through yargs' parse context: the run's
 * streams, folder and environment, and an exit code that is an outcome, not an error (diff
 * --exit-code). A new one per run, so nothing carries over from one in-process run to the next.
 */
export interface CliRun {
  io: CliIo;
  exitCode: number;
  /** Run by `main` once the command has ended, whatever the outcome, last registered first. */
  cleanups: Array<() => Promise<void>>;
}

export type Args<T> = T & GlobalFlags & { cwd?: string; store?: string; ckptRun?: CliRun };

type RunArgs = { cwd?: string; store?: string; ckptRun?: CliRun };

export function ioOf(argv: RunArgs): CliIo {
  return argv.ckptRun?.io ?? processIo();
}

/** The folder the command runs in: `--cwd`, resolved against the run's folder. */
export function cwdOf(argv: RunArgs): string {
  const io = ioOf(argv);
  return argv.cwd === undefined ? io.cwd : path.resolve(io.cwd, argv.cwd);
}

/**
 * A path argument as the library takes it: resolved against the run's folder, or as typed when
 * that folder is the process's own (so messages quote it as the user wrote it).
 */
export function argPath(argv: RunArgs, p: string): string {
  const cwd = cwdOf(argv);
  if (path.isAbsolute(p) || cwd === process.cwd()) return p;
  // a trailing separator means a folder (`-o out/`): path.resolve would drop it
  return path.resolve(cwd, p) + (/[/\\]$/.test(p) ? path.sep : '');
}

/** Ends the run with this exit code once the command returns, without an error. */
export function setExitCode(argv: RunArgs, code: number): void {
  if (!argv.ckptRun) throw new Error('a ckpt command ran outside main()');
  argv.ckptRun.exitCode = code;
}

export function output(argv: GlobalFlags & RunArgs): Output {
  return new Output(argv, ioOf(argv));
}

export interface OpenRepoOptions {
  /**
   * The command works on a folder store's remotes (push, fetch, pull, remote): `--store` may name
   * a folder, and a store elsewhere is refused, naming this command.
   */
  folderOnly?: string;
  /** Index and metadata reads of a store elsewhere skip the local cache (fsck checks what the store holds). */
  uncached?: boolean;
}

export function openRepo(argv: RunArgs, opts: OpenRepoOptions = {}): Promise<Repository> {
  return openRepoAt(argv, cwdOf(argv), opts);
}

/** A run's --store, as given, and where it came from (for messages). */
export interface StoreArg {
  spec: string;
  from: '--store' | '$CKPT_STORE';
}

/** The store `--store` or $CKPT_STORE names for this run, or undefined (the work tree's own). */
export function storeArg(argv: RunArgs): StoreArg | undefined {
  const raw: unknown = argv.store;
  const flag: unknown = Array.isArray(raw) ? raw[raw.length - 1] : raw; // given twice: the last one, as yargs does
  if (flag !== undefined) {
    if (typeof flag !== 'string' || flag === '') throw new UsageError('--store expects a path or a URL (s3://bucket/prefix, http://host:port/name)');
    return { spec: flag, from: '--store' };
  }
  const e = ioOf(argv).env.CKPT_STORE;
  return e ? { spec: e, from: '$CKPT_STORE' } : undefined;
}

/** A path or file:// URL names a folder; http(s):// and s3:// a store elsewhere. */
export function isFolderSpec(spec: string): boolean {
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(spec)?.[1]?.toLowerCase();
  return scheme === undefined || scheme === 'file';
}

/** What storeOption.ts needs of the run: its environment, and a way to clean up at the end. */
export function storeRun(argv: RunArgs): StoreRun {
  const run = argv.ckptRun;
  if (!run) throw new Error('a ckpt command ran outside main()');
  return { io: run.io, atEnd: (fn) => void run.cleanups.push(fn) };
}

/** Refuses `--store` (or $CKPT_STORE) for a command that makes or serves stores of its own. */
export function refuseStoreArg(argv: RunArgs, command: string): void {
  const arg = storeArg(argv);
  if (arg) throw new UsageError(`ckpt ${command} does not run against another store (${arg.from} ${arg.spec}); unset it`);
}

/**
 * The repository at or above `dir`, its commits signed by the run's $CKPT_AUTHOR; with `--store`
 * (or $CKPT_STORE), the work tree around `dir` with that store.
 */
export async function openRepoAt(argv: RunArgs, dir: string, opts: OpenRepoOptions = {}): Promise<Repository> {
  const author = ioOf(argv).env.CKPT_AUTHOR;
  const repoOpts = author === undefined ? {} : { author };
  const arg = storeArg(argv);
  if (!arg) return Repository.open(dir, repoOpts);
  // loaded only with --store: the drivers and the cache are not every command's start-up cost
  const { openStoreRepo } = await import('./storeOption.js');
  return openStoreRepo(storeRun(argv), arg, dir, { ...repoOpts, ...opts });
}

/** `k=v` pairs; values through `parse`, which throws on a bad value. */
export function keyValues<T>(items: unknown, flag: string, parse: (v: string, k: string) => T): Record<string, T> | undefined {
  const list = (Array.isArray(items) ? items : items === undefined ? [] : [items]).map(String);
  if (list.length === 0) return undefined;
  const out: Record<string, T> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw new UsageError(`--${flag} expects key=value, got ${JSON.stringify(item)}`);
    out[item.slice(0, i)] = parse(item.slice(i + 1), item.slice(0, i));
  }
  return out;
}

export function parseNumber(v: string, k: string): number {
  const n = Number(v);
  // 1e400 is Infinity to JavaScript: refused, as NaN is, rather than stored as something else
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`metric ${k} must be a finite number, got ${JSON.stringify(v)}`);
  return n;
}

/** A numeric option given as text: a finite number (whole and >= `min` when `whole`), else E_USAGE. */
export function numberOption(raw: unknown, flag: string, opts: { whole?: boolean; min?: number } = {}): number | undefined {
  if (raw === undefined) return undefined;
  const text = String(Array.isArray(raw) ? raw[raw.length - 1] : raw);
  const n = Number(text);
  const min = opts.min ?? -Infinity;
  const ok = text.trim() !== '' && Number.isFinite(n) && (!opts.whole || Number.isSafeInteger(n)) && n >= min;
  if (!ok) {
    const want = opts.whole ? `a whole number${min > -Infinity ? ` >= ${min}` : ''}` : `a finite number${min > -Infinity ? ` >= ${min}` : ''}`;
    throw new UsageError(`--${flag} expects ${want}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** Params keep their type where it is unambiguous: numbers and booleans, else strings. */
export function parseParam(v: string): string | number | boolean {
  if (v === 'true' || v === 'false') return v === 'true';
  const n = Number(v);
  return v.trim() !== '' && !Number.isNaN(n) && String(n) === v ? n : v;
}
