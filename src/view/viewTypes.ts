/**
 * The JSON document `ckpt view` embeds in its page (and `ckpt view --json` prints). The page is a
 * pure function of it. Where it overlaps a `--json` command it has that command's shape: a
 * commit is a `ckpt log --json` entry, `du` is `ckpt du --json`, an exact pair's `changed` rows
 * are `ckpt diff --json`'s `tensors.changed` rows (without the chunk indices).
 *
 * Pure types only: the browser page imports this file too.
 */
import type { CodeProvenance, CommitMeta } from '../core/objects.js';
import type { TensorStats } from '../diff/tensorDeltaStats.js';
import type { UsageFigures } from '../repo/diskUsage.js';

/** What one commit takes, as `du` counts it for a set of one commit, and what it adds to the commits before it. */
export interface CommitUsage {
  /** Checkpoint bytes (the files' sizes). */
  logical: number;
  /** Raw bytes of the distinct chunks the commit uses. */
  unique: number;
  /** Bytes those chunks (with their delta bases) take in packs. */
  chunks: number;
  /** Raw bytes of the chunks no earlier commit (by time) uses: what the commit added after dedup. */
  newUnique: number;
  /** Bytes those new chunks take in packs (a delta without its older base): what it added after compression. */
  newChunks: number;
}

/** `ckpt du --json`'s store-wide figures (without `disk`, `codeBytes` and `branches`), over the commits shown. */
export interface StoreUsage extends UsageFigures {
  prunedCommits: number;
  prunedLogical: number;
}

export interface ViewCommit {
  id: string;
  /** Branches and tags here, as `ckpt log` names them (`tag: best`). */
  refs: string[];
  type: 'commit';
  tree: string;
  parents: string[];
  message: string;
  author: string;
  time: number;
  meta: CommitMeta;
  code?: CodeProvenance;
  pruned?: { time: string; reason: string };
  du: CommitUsage;
}

/** One row of `ckpt diff --json`'s `tensors.changed`, without `chunks` and `changedChunks`. */
export interface ViewChangedTensor {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  elements: number;
  stats?: TensorStats;
}

/**
 * A comparison of commit `a` (index into `commits`) with commit `b`.
 *
 * exact: the rows come from `diff` (the changed chunks were read at `view` time); the heatmap's
 * number for a module is then exactly `ckpt diff`'s `summary.groups[].relChange`:
 * sqrt(Σ l2Delta²) / sqrt(Σ normA²) over the module's changed tensors with element values.
 *
 * Not exact (a side is pruned, a chunk could not be read, or `--no-read`): `bound` holds, per
 * tensor of the table, a lower bound of ||B − A||² from the chunks' sums of squares alone:
 * Σ over the chunks whose ids differ of (||b_c|| − ||a_c||)² (reverse triangle inequality), NaN
 * where the tensor did not change or has no element values. (The sums skip NaN and Inf, so where
 * those appear it bounds the finite part.) Float32, base64, little-endian.
 */
export interface ViewPair {
  a: number;
  b: number;
  /** `parent`: b's parent a (every parent of every commit); `selected`: two REVs named on the command line. */
  kind: 'parent' | 'selected';
  exact: boolean;
  /** Why the pair is not exact. */
  note?: string;
  changed?: ViewChangedTensor[];
  /** Tensors added, removed, renamed or given another dtype or shape. */
  restructured?: number;
  bound?: string;
}

export interface ViewData {
  format: 'ckpt-view';
  version: 1;
  title: string;
  /** ISO time the page was written. */
  generated: string;
  head: string | null;
  branches: { name: string; id: string; current: boolean }[];
  tags: { name: string; id: string }[];
  metrics: string[];
  /** Oldest first; parents always before children. */
  commits: ViewCommit[];
  /**
   * Every tensor any shown commit holds, sorted. Known by name (diff pairs tensors across files
   * by name); `file` is where it was first seen. A name one commit holds in several files is
   * listed again as `name` + NUL + `file`.
   */
  tensors: { name: string[]; file: string[] };
  /**
   * ||T|| (sqrt of the sum of its chunks' sums of squares) of every tensor in every commit,
   * commit-major (commits × tensors), NaN where absent or without element values. Float32,
   * base64, little-endian. Only for bounds: exact figures come from `pairs[].changed`.
   */
  norms: string;
  pairs: ViewPair[];
  du: StoreUsage;
  /** Name components in a module prefix the page starts with (as `diff --group-depth`). */
  groupDepth: number;
  /** Two commits the page opens comparing (the first two REVs). */
  selected: [number, number] | null;
}
