import type { CommandModule } from 'yargs';
import { gc } from '../repo/gc.js';
import { parseDuration } from '../repo/prune.js';
import { openRepo, output, type Args } from './context.js';
import { humanBytes } from './output.js';

export const gcCommand: CommandModule<object, Args<{ 'dry-run'?: boolean; 'reflog-expire'?: string }>> = {
  command: 'gc',
  describe: 'free what no ref, kept commit or recent reflog entry needs: delete unused packs, repack partly used ones',
  builder: (y) =>
    y
      .option('dry-run', { alias: 'n', type: 'boolean', describe: 'say what would be freed, change nothing' })
      .option('reflog-expire', { type: 'string', default: '30d', describe: 'reflog entries younger than this keep their commits' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const r = await gc(repo, { dryRun: argv['dry-run'], reflogWindowMs: parseDuration(argv['reflog-expire'] ?? '30d') });
    out.result(r);
    const would = r.dryRun ? 'would be ' : '';
    out.line(`${r.commits.reachable} commits reachable, ${r.commits.live} with data, ${r.commits.pruned} pruned`);
    out.line(
      `packs: ${r.packs.before} before, ${r.packs.deleted} ${would}deleted, ${r.packs.repacked} ${would}repacked into ${r.packs.written}, ${r.packs.after} after`,
    );
    out.line(`metadata objects ${would}deleted: ${r.meta.deleted}`);
    out.line(`${r.dryRun ? 'would free' : 'freed'} ${humanBytes(r.bytes.freed)} (${humanBytes(r.bytes.before)} -> ${humanBytes(r.bytes.after)})`);
  },
};
