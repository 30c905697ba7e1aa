import type { CommandModule } from 'yargs';
import { pendingGroups } from '../repo/parts.js';
import { status } from '../repo/status.js';
import { openRepo, output, type Args } from './context.js';
import { shortId } from './output.js';

export const statusCommand: CommandModule<object, Args<object>> = {
  command: 'status',
  describe: 'do the work tree\'s files match HEAD\'s?',
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const s = { ...(await status(repo)), parts: await pendingGroups(repo) };
    out.result(s);
    for (const g of s.parts) out.line(`many-rank commit ${g.group}: ${g.present.length}/${g.of} parts, missing rank(s) ${g.missing.join(', ')}`);
    out.line(`On ${s.branch ? `branch ${s.branch}` : 'a detached HEAD'}${s.head ? ` at ${shortId(s.head)}` : ', no commits yet'}`);
    const changed = s.files.filter((f) => f.state !== 'unchanged');
    if (s.head && changed.length === 0) out.line(`all ${s.files.length} file(s) match HEAD`);
    for (const f of changed) out.line(`  ${out.paint(f.state === 'missing' ? 31 : 33, f.state.padEnd(9))} ${f.path}`);
  },
};
