import type { CommandModule } from 'yargs';
import { UsageError } from '../core/errors.js';
import { arithmeticMerge, type ArithmeticMergeOptions, type MergeSummary } from '../merge/arithmeticMerge.js';
import { describeRecipe } from '../merge/recipe.js';
import { MergeConflictError, threeWayMerge } from '../merge/threeWayMerge.js';
import { openRepo, output, type Args } from './context.js';
import { humanBytes, shortId, table, type Output } from './output.js';

type MergeArgs = Args<
  Omit<ArithmeticMergeOptions, 'method' | 'revs' | 'weights' | 'onProgress'> & {
    revs?: string[];
    method?: string;
    /** w1,w2,... as typed */
    weights?: string;
    into?: string;
    rule?: string[];
    default?: string;
  }
>;

function parseWeights(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  return String(text)
    .split(',')
    .map((w) => {
      const n = Number(w);
      if (w.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--weights expects numbers separated by commas, got ${JSON.stringify(text)}`);
      return n;
    });
}

function printSummary(out: Output, s: MergeSummary): void {
  const where = s.branch ? s.branch.replace(/^refs\/heads\//, '') : 'detached HEAD';
  out.line(`[${where} ${shortId(s.id)}] ${describeRecipe(s.recipe)}`);
  out.line(` parents ${s.parents.map(shortId).join(' ')}`);
  for (const f of s.files) out.line(` ${f.path}  ${f.format}, ${humanBytes(f.size)}${f.from !== f.path ? ` (from ${f.from})` : ''}`);
  out.line(` tensors: ${s.tensors.merged} merged, ${s.tensors.reused} equal in every input (chunks reused), ${s.tensors.copied} copied from the first model`);
  for (const n of s.nan) out.line(` NaN: ${n.tensor} in ${n.file} holds ${n.count} NaN element(s) (kept from the inputs)`);
}

export const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge [revs..]',
  describe: 'join model states: a three-way merge of a branch (THEIRS), or --method linear|slerp|task-arithmetic|ties|dare-linear|dare-ties of REV...',
  builder: (y) =>
    y
      .positional('revs', { type: 'string', array: true, describe: 'THEIRS (three-way), or the models to merge (--method)' })
      .option('into', { type: 'string', describe: 'three-way: merge into this branch instead of the current one' })
      .option('rule', { type: 'string', array: true, describe: 'three-way: GLOB=ours|theirs|base|average[:W] for tensors changed on both sides (first match wins)' })
      .option('default', { type: 'string', describe: 'three-way: the resolution for conflicts no rule matches' })
      .option('message', { alias: 'm', type: 'string', describe: 'commit message' })
      .option('method', { type: 'string', describe: 'linear, slerp, task-arithmetic, ties, dare-linear or dare-ties' })
      .option('base', { type: 'string', describe: 'the base model of task vectors (default: the merge base)' })
      .option('weights', { type: 'string', describe: 'w1,w2,...: one weight per model' })
      .option('t', { type: 'number', describe: 'slerp: interpolation factor in [0, 1] (default 0.5)' })
      .option('density', { type: 'number', describe: 'ties/dare: fraction of each task vector kept, in (0, 1] (default 1)' })
      .option('lambda', { type: 'number', describe: 'task methods: scale of the merged task vector (default 1)' })
      .option('seed', { type: 'number', describe: 'dare: seed of the random drop (default 0)' })
      .option('normalize', { type: 'boolean', describe: 'divide by the sum of the weights (default: as mergekit: on for linear and ties)' })
      .option('tensors', { type: 'string', describe: 'glob: merge only these tensors; the rest come from the first model' })
      .option('window', { type: 'string', describe: 'last:N: average the last N commits of the branch (or of REV)' })
      .option('schedule', { type: 'string', describe: 'with --window: uniform (default) or minus-sqrt' })
      .option('format', { type: 'string', describe: 'write the result as safetensors whatever the input format' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const revs = argv.revs ?? [];
    const arithmetic = argv.method !== undefined || argv.window !== undefined;
    if (!arithmetic) {
      const stray = (['base', 'weights', 't', 'density', 'lambda', 'seed', 'normalize', 'tensors', 'schedule', 'format'] as const).filter((k) => argv[k] !== undefined);
      if (stray.length) throw new UsageError(`--${stray[0]} needs --method (a three-way merge takes --rule and --default)`);
      if (revs.length !== 1) throw new UsageError(`a three-way merge takes one revision (THEIRS), got ${revs.length}; to merge several models use --method`);
      let r;
      try {
        r = await threeWayMerge(repo, { theirs: revs[0], into: argv.into, rules: argv.rule, default: argv.default, message: argv.message });
      } catch (e) {
        if (e instanceof MergeConflictError && !out.json) {
          out.info('conflicts (changed on both sides, no rule):');
          const rows = [['  file', 'tensor', 'ours rel L2', 'theirs rel L2', '']];
          const f = (x: number | null) => (x === null ? '-' : x.toPrecision(4));
          for (const c of e.conflicts) rows.push([`  ${c.file}`, c.tensor, f(c.oursRelL2), f(c.theirsRelL2), c.reason ?? '']);
          for (const l of table(rows, [2, 3])) out.info(l);
        }
        throw e;
      }
      out.result(r);
      if (r.outcome === 'up-to-date') return out.line('Already up to date.');
      if (r.outcome === 'fast-forward') return out.line(`Fast-forward to ${shortId(r.id)}`);
      out.line(`[${(r.branch ?? 'detached HEAD').replace(/^refs\/heads\//, '')} ${shortId(r.id)}] merged ${revs[0]} (base ${shortId(r.base!)})`);
      for (const t of r.taken ?? []) out.line(` ${t.tensor}  from ${t.from}  (${t.file})`);
      return;
    }
    if (argv.into || argv.rule || argv.default) throw new UsageError('--into, --rule and --default are for three-way merges, not --method');
    const progress = out.progress('merge');
    try {
      const s = await arithmeticMerge(repo, {
        method: argv.method ?? 'linear',
        revs,
        base: argv.base,
        weights: parseWeights(argv.weights),
        t: argv.t,
        density: argv.density,
        lambda: argv.lambda,
        seed: argv.seed,
        normalize: argv.normalize,
        tensors: argv.tensors,
        window: argv.window,
        schedule: argv.schedule,
        format: argv.format,
        message: argv.message,
        onProgress: (d, t) => progress.update(d, t),
      });
      progress.stop();
      out.result(s);
      printSummary(out, s);
    } finally {
      progress.stop();
    }
  },
};
