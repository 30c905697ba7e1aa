import type { CommandModule } from 'yargs';
import { log } from '../repo/history.js';
import { openRepo, output, type Args } from './context.js';
import { shortId, table } from './output.js';

export const logCommand: CommandModule<object, Args<{ rev?: string; n?: number; metric?: string[] }>> = {
  command: 'log [rev]',
  describe: 'show the history of a branch with steps and metrics',
  builder: (y) =>
    y
      .positional('rev', { type: 'string', describe: 'where to start (default HEAD)' })
      .option('n', { alias: 'max-count', type: 'number', describe: 'at most N commits' })
      .option('metric', { type: 'string', array: true, describe: 'show these metrics as columns' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const entries = await log(repo, argv.rev ?? 'HEAD', argv.n ?? Infinity);
    out.result(entries.map((e) => ({ id: e.id, refs: e.refs, ...e.commit })));
    if (entries.length === 0) return out.line('no commits yet');
    const metrics = argv.metric ?? [...new Set(entries.flatMap((e) => Object.keys(e.commit.meta.metrics ?? {})))].sort();
    const rows = [['commit', 'date', 'step', ...metrics, 'message']];
    for (const e of entries) {
      const m = e.commit.meta;
      const refs = e.refs.length ? out.paint(33, ` (${e.refs.join(', ')})`) : '';
      rows.push([
        out.paint(33, shortId(e.id)),
        new Date(e.commit.time).toISOString().replace('T', ' ').slice(0, 19),
        m.step === undefined ? '' : String(m.step),
        ...metrics.map((k) => (m.metrics?.[k] === undefined ? '' : String(m.metrics[k]))),
        e.commit.message.split('\n')[0] + refs,
      ]);
    }
    for (const l of table(rows, [2])) out.line(l);
  },
};
