import type { CommandModule } from 'yargs';
import { restoreCode } from '../repo/restoreCode.js';
import { argPath, openRepo, output, type Args } from './context.js';
import { humanBytes } from './output.js';

export const restoreCodeCommand: CommandModule<object, Args<{ rev: string; dir?: string }>> = {
  command: 'restore-code <rev> [dir]',
  describe: 'write back the uncommitted code files stored with a checkpoint (--with-code)',
  builder: (y) =>
    y
      .positional('rev', { type: 'string', demandOption: true })
      .positional('dir', { type: 'string', describe: 'where to write them (default: the top of the Git work tree)' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const r = await restoreCode(repo, argv.rev, argv.dir === undefined ? undefined : argPath(argv, argv.dir));
    out.result(r);
    for (const w of r.warnings) out.info(`ckpt: warning: ${w}`);
    for (const f of r.written) out.line(`${f.path}  ${humanBytes(f.size)}  verified`);
    for (const p of r.notRestored) out.line(`${p}  not stored (deleted in that state, or too big)`);
    if (r.written.length === 0 && r.notRestored.length === 0) out.line(`the code was clean: \`git checkout ${r.code.commit ?? '?'}\` gives it back`);
  },
};
