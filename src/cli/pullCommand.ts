import type { CommandModule } from 'yargs';
import { pull } from '../sync/pull.js';
import { defaultRemote, openRemote } from '../sync/remoteConfig.js';
import { UsageError } from '../core/errors.js';
import { openRepo, output, type Args } from './context.js';
import { shortId } from './output.js';
import { jobsOf, jobsOption, metered, summary } from './transferReport.js';

export const pullCommand: CommandModule<object, Args<{ remote?: string; branch?: string; jobs: number }>> = {
  command: 'pull [remote] [branch]',
  describe: 'fetch, then fast-forward a branch (default: the current one) to the remote\'s',
  builder: (y) =>
    y
      .positional('remote', { type: 'string', describe: 'remote name (default: the only remote, or origin)' })
      .positional('branch', { type: 'string' })
      .option('jobs', { alias: 'j', ...jobsOption }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv, { folderOnly: 'pull' });
    const opened = await openRemote(repo, argv.remote ?? defaultRemote(repo));
    if (!opened.name) throw new UsageError('pull needs a configured remote (ckpt remote add NAME URL)');
    const m = metered(out, 'pull', opened.transport);
    try {
      const r = await pull(repo, m.transport, opened.name, argv.branch, { jobs: jobsOf(argv), metadataOnly: opened.settings.partial, onProgress: m.onProgress });
      const transfer = m.finish();
      out.result({ ...r, transfer });
      out.line(r.status === 'up-to-date' ? `${r.branch}: up to date` : `${r.branch}: ${r.old ? shortId(r.old) : '(new)'} -> ${shortId(r.new)} (${r.status})`);
      out.info(summary('received', transfer.bytesReceived, transfer.seconds));
      if (r.status !== 'up-to-date') out.info('the branch moved; `ckpt checkout HEAD` writes its files');
    } finally {
      m.finish();
      await m.transport.close();
    }
  },
};
