import type { CommandModule } from 'yargs';
import { diskUsage } from '../repo/diskUsage.js';
import { openRepo, output, type Args } from './context.js';
import { humanBytes, table } from './output.js';

const x = (r: number) => `${r.toFixed(2)}x`;

export const duCommand: CommandModule<object, Args<object>> = {
  command: 'du',
  describe: 'checkpoint bytes against stored bytes: dedup and compression ratios, per branch',
  builder: (y) => y as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const u = await diskUsage(repo);
    out.result(u);
    out.line(`checkpoints   ${humanBytes(u.logical)} in ${u.commits} commit(s)${u.prunedCommits ? ` (+${u.prunedCommits} pruned, were ${humanBytes(u.prunedLogical)})` : ''}`);
    out.line(`unique data   ${humanBytes(u.unique)}  dedup ${x(u.dedupRatio)}`);
    out.line(`in packs      ${humanBytes(u.chunks)}  compression ${x(u.compressionRatio)}`);
    if (u.codeBytes) out.line(`code files    ${humanBytes(u.codeBytes)}`);
    out.line(
      `on disk       ${humanBytes(u.disk.total)} (packs ${humanBytes(u.disk.packs)}, index ${humanBytes(u.disk.index)}, metadata ${humanBytes(u.disk.meta)}, other ${humanBytes(u.disk.other)})`,
    );
    out.line(`overall       ${x(u.logical / Math.max(1, u.disk.total))}`);
    if (u.branches.length) {
      out.line();
      const rows = [['branch', 'commits', 'checkpoints', 'unique', 'in packs', 'dedup', 'compression']];
      for (const b of u.branches) {
        rows.push([b.name, String(b.commits), humanBytes(b.logical), humanBytes(b.unique), humanBytes(b.chunks), x(b.dedupRatio), x(b.compressionRatio)]);
      }
      for (const l of table(rows, [1, 2, 3, 4, 5, 6])) out.line(l);
    }
  },
};
