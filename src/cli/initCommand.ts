import type { CommandModule } from 'yargs';
import { Repository } from '../repo/repository.js';
import { cwdOf, output, type Args } from './context.js';
import { humanBytes } from './output.js';

export const initCommand: CommandModule<object, Args<{ 'chunk-size'?: number }>> = {
  command: 'init',
  describe: 'create a ckpt store (.ckpt/) at the top of the Git work tree, or here',
  builder: (y) => y.option('chunk-size', { type: 'number', describe: 'bytes per tensor chunk (power of two, default 1 MiB)' }),
  handler: async (argv) => {
    const out = output(argv);
    const repo = await Repository.init(cwdOf(argv), { chunkSize: argv['chunk-size'] });
    out.result({ root: repo.root, store: repo.store.dir, chunkSize: repo.store.config.chunkSize });
    out.line(`Initialized empty ckpt store in ${repo.store.dir} (chunk size ${humanBytes(repo.store.config.chunkSize)})`);
  },
};
