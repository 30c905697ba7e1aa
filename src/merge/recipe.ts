/**
 * The recipe of a merge, kept in the merge commit's metadata (`meta.extra.merge`) so the result can
 * be explained and made again: method, inputs, weights, base, seed and the other knobs, and the
 * ckpt version that computed it.
 */
import { readFileSync } from 'node:fs';
import type { ObjectId } from '../core/objectId.js';
import type { Commit } from '../core/objects.js';

export interface MergeRecipe {
  method: string;
  /** Input commits, in the order the weights follow. */
  inputs: ObjectId[];
  weights?: number[];
  base?: ObjectId;
  t?: number;
  density?: number;
  lambda?: number;
  seed?: number;
  normalize?: boolean;
  tensors?: string;
  window?: string;
  schedule?: string;
  format?: string;
  /** Three-way merges: the rules given, in order, and the default. */
  rules?: string[];
  default?: string;
  /** Three-way merges: how each conflicting tensor was resolved. */
  resolved?: Record<string, string>;
  ckptVersion: string;
}

let version: string | undefined;

/** ckpt's version, from the package.json above this module (src/ or dist/src/). */
export function ckptVersion(): string {
  if (version) return version;
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ckpt' && pkg.version) return (version = pkg.version);
    } catch {
      // not there: try one level up
    }
  }
  return (version = 'unknown');
}

export function recipeOf(c: Commit): MergeRecipe | undefined {
  const r = c.meta.extra?.merge;
  return r && typeof r === 'object' ? (r as MergeRecipe) : undefined;
}

/** One line: `linear weights=0.5,0.5 base=1a2b3c4d5e6f seed=7`. */
export function describeRecipe(r: MergeRecipe): string {
  const parts = [r.method];
  if (r.window) parts.push(`window=${r.window}${r.schedule ? `/${r.schedule}` : ''}`);
  if (r.weights) parts.push(`weights=${r.weights.map((w) => Number(w.toPrecision(6))).join(',')}`);
  if (r.t !== undefined) parts.push(`t=${r.t}`);
  if (r.density !== undefined) parts.push(`density=${r.density}`);
  if (r.lambda !== undefined && r.lambda !== 1) parts.push(`lambda=${r.lambda}`);
  if (r.normalize !== undefined) parts.push(`normalize=${r.normalize}`);
  if (r.seed !== undefined) parts.push(`seed=${r.seed}`);
  if (r.base) parts.push(`base=${r.base.slice(0, 12)}`);
  if (r.tensors) parts.push(`tensors=${r.tensors}`);
  if (r.rules?.length) parts.push(`rules=${r.rules.join(';')}`);
  if (r.default) parts.push(`default=${r.default}`);
  parts.push(`ckpt ${r.ckptVersion}`);
  return parts.join(' ');
}
