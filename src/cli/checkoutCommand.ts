import type { CommandModule } from 'yargs';
import { partialFetcher, type PartialFetchResult } from '../sync/partialFetch.js';
import { checkout } from '../repo/checkout.js';
import { argPath, openRepo, output, type Args } from './context.js';
import { humanBytes } from './output.js';
import { modeOption, withMode } from './revisionMode.js';

export const checkoutCommand: CommandModule<object, Args<{ rev: string; paths?: string[]; output?: string; tensors?: string; mode?: string }>> = {
  command: 'checkout <rev> [paths..]',
  describe: 'write a commit\'s files back, byte-exact and verified',
  builder: (y) =>
    y
      .positional('rev', { type: 'string', demandOption: true })
      .positional('paths', { type: 'string', array: true, describe: 'only these files of the commit' })
      .option('output', { alias: 'o', type: 'string', describe: 'file (one-file commits) or folder to write to' })
      .option('tensors', { type: 'string', describe: 'glob: write just these tensors as one safetensors file (-o)' })
      .option('mode', modeOption) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const progress = out.progress('checkout');
    // in a partial clone, chunks not here yet are fetched by byte range first
    let fetched: (PartialFetchResult & { remote: string }) | undefined;
    const fetchMissing = await partialFetcher(repo, (f) => {
      fetched = f;
      out.info(`fetched ${f.chunks} chunk(s), ${humanBytes(f.bytes)} in ${f.requests} range request(s) from ${f.remote}`);
    });
    try {
      const r = await checkout(repo, withMode(argv.rev, argv.mode), {
        output: argv.output === undefined ? undefined : argPath(argv, argv.output),
        tensors: argv.tensors,
        paths: argv.paths,
        onProgress: (d, t) => progress.update(d, t),
        fetchMissing,
      });
      progress.stop();
      out.result(fetched ? { ...r, fetched } : r);
      for (const f of r.files) out.line(`${f.output}  ${humanBytes(f.size)}  b3 ${f.hash.slice(0, 16)}  verified`);
      if (r.tensors !== undefined) out.line(`${r.tensors} tensor(s) written`);
    } finally {
      progress.stop();
    }
  },
};
