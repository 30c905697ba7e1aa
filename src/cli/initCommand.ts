import type { CommandModule } from 'yargs';
import { Repository } from '../repo/repository.js';
import { cwdOf, output, storeArg, storeRun, type Args } from './context.js';
import { humanBytes } from './output.js';

export const initCommand: CommandModule<object, Args<{ 'chunk-size'?: number }>> = {
  command: 'init',
  describe: 'create a ckpt store (.ckpt/) at the top of the Git work tree, or here; with --store, that store',
  builder: (y) => y.option('chunk-size', { type: 'number', describe: 'bytes per tensor chunk (power of two, default 1 MiB)' }),
  handler: async (argv) => {
    const out = output(argv);
    const arg = storeArg(argv);
    const opts = { chunkSize: argv['chunk-size'] };
    const repo = arg
      ? await (await import('./storeOption.js')).initStoreRepo(storeRun(argv), arg, cwdOf(argv), opts)
      : await Repository.init(cwdOf(argv), opts);
    // a store elsewhere is named by its URL; its local folder is only this run's scratch space
    const elsewhere = !repo.store.backend.url.startsWith('file:');
    const where = elsewhere ? repo.store.backend.url : repo.store.dir;
    out.result({ root: repo.root, store: where, chunkSize: repo.store.config.chunkSize });
    out.line(`Initialized empty ckpt store ${elsewhere ? 'at' : 'in'} ${where} (chunk size ${humanBytes(repo.store.config.chunkSize)})`);
  },
};
