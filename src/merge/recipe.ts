/**
 * The recipe of a merge, kept in the merge commit's metadata (`meta.extra.merge`) so the result can
 * be explained and made again: method, inputs, weights, base, seed and the other knobs, and the
 * ckpt version that computed it.
 */
import { readFileSync } from 'node:fs';
import type { ObjectId } from '../core/objectId.js';
import type { Commit } from '../core/objects.js';

/** The knobs of an arithmetic merge, as given and as recorded. */
export interface MergeKnobs {
  /** One per model, in the order of the inputs. */
  weights?: number[];
  /** slerp's interpolation factor. */
  t?: number;
  /** ties/dare: the fraction of each task vector kept. */
  density?: number;
  /** Scale of the merged task vector. */
  lambda?: number;
  /** dare: the seed of the random drop. */
  seed?: number;
  /** Divide by the sum of the weights that contributed. */
  normalize?: boolean;
  /** Only tensors matching this glob are merged; the rest are taken from the first model. */
  tensors?: string;
  /** `last:N`: the last N commits of the first revision (default HEAD) are the inputs. */
  window?: string;
  schedule?: string;
  /** Write safetensors whatever the input format. */
  format?: string;
}

export interface MergeRecipe extends MergeKnobs {
  method: string;
  /** Input commits, in the order the weights follow. */
  inputs: ObjectId[];
  base?: ObjectId;
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
