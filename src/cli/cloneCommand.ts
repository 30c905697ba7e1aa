import type { CommandModule } from 'yargs';
import * as path from 'node:path';
import { clone, cloneDirFor } from '../sync/clone.js';
import { cwdOf, output, refuseStoreArg, type Args } from './context.js';
import { humanBytes, shortId } from './output.js';
import { jobsOf, jobsOption, metered, summary, type Metered } from './transferReport.js';

type CloneArgs = Args<{
  url: string;
  dir?: string;
  branch?: string;
  checkout: boolean;
  partial?: boolean;
  region?: string;
  endpoint?: string;
  token?: string;
  jobs: number;
}>;

export const cloneCommand: CommandModule<object, CloneArgs> = {
  command: 'clone <url> [dir]',
  describe: 'copy a remote into a new folder, with origin set up and the branch checked out',
  builder: (y) =>
    y
      .positional('url', { type: 'string', demandOption: true })
      .positional('dir', { type: 'string', describe: 'an empty or new folder (default: named after the URL)' })
      .option('branch', { alias: 'b', type: 'string', describe: 'branch to check out (default main, else the first)' })
      .option('checkout', { type: 'boolean', default: true, describe: 'write the branch\'s files (--no-checkout: store only)' })
      .option('partial', { type: 'boolean', describe: 'metadata only; checkouts fetch the chunks they need by byte range' })
      .option('region', { type: 'string', describe: 'S3 region' })
      .option('endpoint', { type: 'string', describe: 'S3-compatible server URL' })
      .option('token', { type: 'string', describe: 'bearer token for ckpt serve (or $CKPT_TOKEN)' })
      .option('jobs', { alias: 'j', ...jobsOption }) as never,
  handler: async (argv) => {
    refuseStoreArg(argv, 'clone');
    const out = output(argv);
    const cwd = cwdOf(argv);
    const dir = path.resolve(cwd, argv.dir ?? cloneDirFor(argv.url));
    let m: Metered | undefined;
    const url = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(argv.url) ? argv.url : path.resolve(cwd, argv.url);
    const r = await clone(url, dir, {
      branch: argv.branch,
      noCheckout: !argv.checkout,
      partial: argv.partial,
      region: argv.region,
      endpoint: argv.endpoint,
      credentials: argv.token ? { token: argv.token } : undefined,
      jobs: jobsOf(argv),
      onProgress: (d, t) => m?.onProgress(d, t),
      wrap: (t) => (m = metered(out, 'clone', t)).transport,
    });
    const transfer = m!.finish();
    out.result({ ...r, transfer });
    out.line(`Cloned ${argv.url} into ${r.root}${r.branch ? ` (branch ${r.branch} at ${r.head ? shortId(r.head) : '?'})` : ' (empty remote)'}`);
    for (const f of r.checkout?.files ?? []) out.line(`${f.output}  ${humanBytes(f.size)}  verified`);
    out.info(summary('received', transfer.bytesReceived, transfer.seconds));
  },
};
