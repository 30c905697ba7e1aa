import type { CommandModule } from 'yargs';
import type { PendingGroup } from '../repo/parts.js';
import type { Repository } from '../repo/repository.js';
import { status } from '../repo/status.js';
import { openRepo, output, type Args } from './context.js';
import { shortId } from './output.js';

/** Where the parts of many-rank commits wait (parts.ts PARTS_PREFIX). */
const PARTS_REFS = 'refs/parts/';

/** Many-rank commits still waiting for ranks: in this store, or on a remote with --remote. */
async function pendingParts(repo: Repository, remote: string | undefined): Promise<PendingGroup[]> {
  if (remote === undefined) {
    // the parts code (and the commit code it combines with) loads only when parts wait
    if ((await repo.store.refs.list(PARTS_REFS)).size === 0) return [];
    const { localPendingGroups } = await import('../repo/parts.js');
    return localPendingGroups(repo);
  }
  const { openRemote } = await import('../sync/remoteConfig.js');
  const { remotePendingGroups } = await import('../sync/remoteParts.js');
  const { transport } = await openRemote(repo, remote);
  try {
    return await remotePendingGroups(transport, repo);
  } finally {
    await transport.close?.();
  }
}

export const statusCommand: CommandModule<object, Args<{ remote?: string }>> = {
  command: 'status',
  describe: 'do the work tree\'s files match HEAD\'s? which ranks a many-rank commit waits for',
  builder: (y) => y.option('remote', { type: 'string', describe: 'also list the many-rank commits waiting on this remote' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const parts = await pendingParts(repo, argv.remote);
    const s = await status(repo);
    // `parts` only when a many-rank commit waits (or a remote was asked about)
    out.result(parts.length || argv.remote !== undefined ? { ...s, parts } : s);
    for (const g of parts) out.line(`many-rank commit ${g.group}: ${g.present.length}/${g.of} parts, missing rank(s) ${g.missing.join(', ')}`);
    out.line(`On ${s.branch ? `branch ${s.branch}` : 'a detached HEAD'}${s.head ? ` at ${shortId(s.head)}` : ', no commits yet'}`);
    const changed = s.files.filter((f) => f.state !== 'unchanged');
    if (s.head && changed.length === 0) out.line(`all ${s.files.length} file(s) match HEAD`);
    for (const f of changed) out.line(`  ${out.paint(f.state === 'missing' ? 31 : 33, f.state.padEnd(9))} ${f.path}`);
  },
};
