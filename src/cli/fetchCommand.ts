import type { CommandModule } from 'yargs';
import { fetchRemote } from '../sync/fetch.js';
import { defaultRemote, openRemote } from '../sync/remoteConfig.js';
import { openRepo, output, type Args } from './context.js';
import { shortId } from './output.js';
import { jobsOf, jobsOption, metered, summary } from './transferReport.js';

export const fetchCommand: CommandModule<object, Args<{ remote?: string; jobs: number }>> = {
  command: 'fetch [remote]',
  describe: 'bring what a remote has and this store lacks; update refs/remotes/<remote>/*',
  builder: (y) =>
    y.positional('remote', { type: 'string', describe: 'remote name or URL (default: the only remote, or origin)' }).option('jobs', { alias: 'j', ...jobsOption }) as never,
  handler: async (argv) => {
    const jobs = jobsOf(argv);
    const out = output(argv);
    const repo = await openRepo(argv, { folderOnly: 'fetch' });
    const opened = await openRemote(repo, argv.remote ?? defaultRemote(repo));
    const m = metered(out, 'fetch', opened.transport);
    try {
      const r = await fetchRemote(repo, m.transport, { remoteName: opened.name, jobs, metadataOnly: opened.settings.partial, onProgress: m.onProgress });
      const transfer = m.finish();
      out.result({ ...r, transfer });
      for (const u of r.updated) out.line(`${u.ref}: ${u.old ? shortId(u.old) : '(new)'} -> ${shortId(u.new)}`);
      out.info(`${r.commits} commit(s), ${r.packs.fetched} pack(s) fetched (${r.packs.reused} already here), ${r.meta} metadata object(s)`);
      out.info(summary('received', transfer.bytesReceived, transfer.seconds));
    } finally {
      m.finish();
      await m.transport.close();
    }
  },
};
