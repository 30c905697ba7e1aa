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
