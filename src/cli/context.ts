/** What every command needs: the repository (found from the current directory) and output. */
import { UsageError } from '../core/errors.js';
import { Repository } from '../repo/repository.js';
import { Output, type GlobalFlags } from './output.js';

export type Args<T> = T & GlobalFlags & { cwd?: string };

export function output(argv: GlobalFlags): Output {
  return new Output(argv);
}

export function openRepo(argv: { cwd?: string }): Promise<Repository> {
  return Repository.open(argv.cwd ?? process.cwd());
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
  if (v.trim() === '' || Number.isNaN(n)) throw new UsageError(`metric ${k} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** Params keep their type where it is unambiguous: numbers and booleans, else strings. */
export function parseParam(v: string): string | number | boolean {
  if (v === 'true' || v === 'false') return v === 'true';
  const n = Number(v);
  return v.trim() !== '' && !Number.isNaN(n) && String(n) === v ? n : v;
}
