import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { CommandModule } from 'yargs';
import { renderViewHtml } from '../view/htmlWriter.js';
import { buildViewData } from '../view/viewData.js';
import { cwdOf, openRepo, output, type Args } from './context.js';
import { humanBytes } from './output.js';

type ViewArgs = Args<{ revs?: string[]; o?: string; branches?: string; metric?: string[]; read: boolean; groupDepth: number; title?: string }>;

export const viewCommand: CommandModule<object, ViewArgs> = {
  command: 'view [revs..]',
  describe: 'write one offline HTML page of the history: commit graph, metric curves, per-layer change, storage',
  builder: (y) =>
    y
      .positional('revs', { type: 'string', array: true, describe: 'draw the history of these revisions (default: every branch); the first two are compared exactly' })
      .option('o', { alias: 'output', type: 'string', describe: 'the HTML file to write (default ckpt-view.html)' })
      .option('branches', { type: 'string', describe: 'only branches whose name matches this glob' })
      .option('metric', { type: 'string', array: true, describe: 'only these metrics (default all)' })
      .option('read', { type: 'boolean', default: true, describe: 'read changed chunks for exact per-layer change (--no-read: bounds from the stored sums of squares only)' })
      .option('group-depth', { type: 'number', default: 2, describe: 'name components in a module prefix the page starts with' })
      .option('title', { type: 'string', describe: 'the page title (default: the work tree folder name)' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    let told = false;
    const data = await buildViewData(repo, {
      onProgress: (done, total) => {
        // the comparisons read the chunks that changed: say so when there are many
        if (done === 0 && total > 20 && argv.read && !told) out.info(`comparing ${total} pairs of commits (reading the chunks that changed; --no-read skips that)`);
        told = true;
      },
      revs: argv.revs,
      branches: argv.branches,
      metrics: argv.metric,
      read: argv.read,
      groupDepth: argv.groupDepth,
      title: argv.title ?? path.basename(repo.root),
    });
    const { html } = renderViewHtml(data);
    const file = path.resolve(cwdOf(argv), argv.o ?? 'ckpt-view.html');
    await fs.mkdir(path.dirname(file), { recursive: true });
    // written beside the target and renamed: a reader never sees half a page
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, html);
    await fs.rename(tmp, file);
    const exact = data.pairs.filter((p) => p.exact).length;
    out.result({ file, bytes: Buffer.byteLength(html), commits: data.commits.length, tensors: data.tensors.name.length, pairs: data.pairs.length, exactPairs: exact, data });
    out.line(`wrote ${file} (${humanBytes(Buffer.byteLength(html))}): ${data.commits.length} commits, ${data.branches.length} branches, ${data.metrics.length} metrics, ${data.tensors.name.length} tensors`);
    if (exact < data.pairs.length) {
      const why = [...new Set(data.pairs.filter((p) => !p.exact).map((p) => p.note))];
      out.info(`${data.pairs.length - exact} of ${data.pairs.length} comparisons are bounds from sums of squares (${why.slice(0, 3).join('; ')}${why.length > 3 ? '; ...' : ''})`);
    }
  },
};
