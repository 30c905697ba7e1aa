import type { CommandModule } from 'yargs';
import { exportSafetensors } from '../merge/exportSafetensors.js';
import { argPath, openRepo, output, type Args } from './context.js';
import { humanBytes } from './output.js';

export const exportCommand: CommandModule<object, Args<{ rev: string; path?: string; format: string; output: string }>> = {
  command: 'export <rev> [path]',
  describe: 'write one stored model file as safetensors (a torch pickle becomes a file that runs no code)',
  builder: (y) =>
    y
      .positional('rev', { type: 'string', demandOption: true })
      .positional('path', { type: 'string', describe: 'the file of the commit (needed when it holds several)' })
      .option('format', { type: 'string', default: 'safetensors', describe: 'output format (safetensors)' })
      .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the file to write' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const r = await exportSafetensors(repo, argv.rev, argv.path, argPath(argv, argv.output), argv.format);
    out.result(r);
    out.line(`${r.output}  ${humanBytes(r.size)}  ${r.tensors} tensor(s) from ${r.path}  b3 ${r.hash.slice(0, 16)}`);
  },
};
