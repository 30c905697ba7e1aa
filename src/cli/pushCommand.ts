import type { CommandModule } from 'yargs';
import { push } from '../sync/push.js';
import { combinePushedParts } from '../sync/remoteParts.js';
import { defaultRemote, openRemote } from '../sync/remoteConfig.js';
import type { Repository } from '../repo/repository.js';
import { openRepo, output, type Args } from './context.js';
import { shortId } from './output.js';
import { jobsOf, jobsOption, metered, summary } from './transferReport.js';

type PushArgs = Args<{ remote?: string; refs?: string[]; all?: boolean; force?: boolean; jobs: number }>;

/** `push main` means the default remote's main unless `main` names a remote or looks like a URL. */
export function splitRemoteArgs(repo: Repository, first: string | undefined, rest: string[]): { remote: string; rest: string[] } {
  if (first === undefined) return { remote: defaultRemote(repo), rest };
  if (repo.store.config.remotes[first] || /[/:]/.test(first) || first.startsWith('.')) return { remote: first, rest };
  return { remote: defaultRemote(repo), rest: [first, ...rest] };
}

export const pushCommand: CommandModule<object, PushArgs> = {
  command: 'push [remote] [refs..]',
  describe: 'send branches or tags and what they need to a remote; refuses a non-fast-forward unless --force',
  builder: (y) =>
    y
      .positional('remote', { type: 'string', describe: 'remote name or URL (default: the only remote, or origin)' })
      .positional('refs', { type: 'string', array: true, describe: 'branches, tags or parts (refs/parts/GROUP/RANK; default: the current branch)' })
      .option('all', { type: 'boolean', describe: 'every branch and tag' })
      .option('force', { alias: 'f', type: 'boolean', describe: 'move remote refs even when commits would be dropped' })
      .option('jobs', { alias: 'j', ...jobsOption }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv, { folderOnly: 'push' });
    const { remote, rest } = splitRemoteArgs(repo, argv.remote, argv.refs ?? []);
    const opened = await openRemote(repo, remote);
    const m = metered(out, 'push', opened.transport);
    try {
      const r = await push(repo, m.transport, { refs: rest, all: argv.all, force: argv.force, jobs: jobsOf(argv), remoteName: opened.name, onProgress: m.onProgress });
      const parts = await combinePushedParts(repo, m.transport, r.updates);
      const transfer = m.finish();
      out.result({ ...r, transfer, ...(parts.length ? { parts } : {}) });
      for (const u of r.updates) {
        const what = u.status === 'up-to-date' ? 'up to date' : `${u.old ? shortId(u.old) : '(new)'} -> ${shortId(u.new)}${u.status === 'forced' ? ' (forced)' : ''}`;
        out.line(`${u.ref}: ${what}`);
      }
      for (const p of parts) {
        out.line(p.commit ? `many-rank commit ${p.group}: all parts there, ${p.combined ? 'committed' : 'already committed as'} ${shortId(p.commit)}` : `many-rank commit ${p.group}: waiting for rank(s) ${p.missing.join(', ')}`);
      }
      out.info(`${r.commits} commit(s), ${r.chunks} chunk(s) in ${r.packs.sent} pack(s) (${r.packs.reused} already there), ${r.meta} metadata object(s)`);
      out.info(summary('sent', transfer.bytesSent, transfer.seconds));
    } finally {
      m.finish();
      await m.transport.close();
    }
  },
};
