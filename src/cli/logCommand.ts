import type { CommandModule } from 'yargs';
import { describeRecipe, recipeOf } from '../merge/recipe.js';
import { log, refsByCommit } from '../repo/history.js';
import { resolveRevision } from '../repo/resolveRevision.js';
import { numberOption, openRepo, output, type Args } from './context.js';
import { shortId, table } from './output.js';

export const logCommand: CommandModule<object, Args<{ rev?: string; n?: string; metric?: string[]; code?: string; graph?: boolean; all?: boolean }>> = {
  command: 'log [rev]',
  describe: 'show the history of a branch with steps and metrics',
  builder: (y) =>
    y
      .positional('rev', { type: 'string', describe: 'where to start (default HEAD)' })
      .option('n', { alias: 'max-count', type: 'string', describe: 'at most N commits' })
      .option('metric', { type: 'string', array: true, describe: 'show these metrics as columns' })
      .option('code', { type: 'string', describe: 'the checkpoints made from this Git commit of the code (any Git revision)' })
      .option('graph', { type: 'boolean', describe: 'draw merges and branches, every parent followed (as git log --graph)' })
      .option('all', { type: 'boolean', describe: 'with --graph: start from every branch, not only REV' }) as never,
  handler: async (argv) => {
    const limit = numberOption(argv.n, 'max-count', { whole: true, min: 0 }) ?? Infinity;
    const out = output(argv);
    const repo = await openRepo(argv);
    if (argv.graph) {
      const { drawGraph, topoOrder } = await import('../repo/historyGraph.js');
      const starts = argv.all ? [...(await repo.store.refs.list('refs/heads/')).values()] : [];
      const head = await repo.headCommit();
      if (argv.rev) starts.push(await resolveRevision(repo, argv.rev));
      else if (head) starts.push(head);
      const rows = drawGraph(await topoOrder(repo, starts, limit));
      const names = await refsByCommit(repo);
      out.result(rows.filter((r) => r.id).map((r) => ({ id: r.id, graph: r.graph, refs: names.get(r.id!) ?? [], ...r.commit })));
      if (rows.length === 0) return out.line('no commits yet');
      for (const r of rows) {
        if (!r.id) {
          out.line(r.graph);
          continue;
        }
        const refs = names.get(r.id)?.length ? out.paint(33, ` (${names.get(r.id)!.join(', ')})`) : '';
        const recipe = recipeOf(r.commit!);
        const step = r.commit!.meta.step !== undefined ? ` step ${r.commit!.meta.step}` : '';
        out.line(`${r.graph} ${out.paint(33, shortId(r.id))}${refs} ${r.commit!.message.split('\n')[0]}${step}${recipe ? out.paint(2, ` [${describeRecipe(recipe)}]`) : ''}`);
      }
      return;
    }
    const byCode = argv.code !== undefined ? await (await import('../repo/codeHistory.js')).logForCode(repo, argv.code) : undefined;
    const entries = byCode ? byCode.entries.slice(0, limit) : await log(repo, argv.rev ?? 'HEAD', limit);
    const pruned = await repo.store.pruned.all();
    const prunedAt = (id: string) => {
      const m = pruned.get(id);
      return m ? { pruned: { time: new Date(m.time).toISOString(), reason: m.reason } } : {};
    };
    out.result(entries.map((e) => ({ id: e.id, refs: e.refs, ...e.commit, ...prunedAt(e.id) })));
    if (entries.length === 0) return out.line(byCode ? `no checkpoints made from ${shortId(byCode.gitCommit)}` : 'no commits yet');
    const metrics = argv.metric ?? [...new Set(entries.flatMap((e) => Object.keys(e.commit.meta.metrics ?? {})))].sort();
    const rows = [['commit', 'date', 'step', ...metrics, 'message']];
    for (const e of entries) {
      const m = e.commit.meta;
      const refs = e.refs.length ? out.paint(33, ` (${e.refs.join(', ')})`) : '';
      const mark = pruned.has(e.id) ? out.paint(2, ' [pruned]') : '';
      rows.push([
        out.paint(33, shortId(e.id)),
        new Date(e.commit.time).toISOString().replace('T', ' ').slice(0, 19),
        m.step === undefined ? '' : String(m.step),
        ...metrics.map((k) => (m.metrics?.[k] === undefined ? '' : String(m.metrics[k]))),
        e.commit.message.split('\n')[0] + refs + mark,
      ]);
    }
    for (const l of table(rows, [2])) out.line(l);
  },
};
