import type { CommandModule } from 'yargs';
import { CkptError } from '../core/errors.js';
import { fsck } from '../repo/fsck.js';
import { openRepo, output, type Args } from './context.js';
import { humanBytes } from './output.js';

export const fsckCommand: CommandModule<object, Args<{ 'read-data'?: boolean }>> = {
  command: 'fsck',
  describe: 'check the store: references, sizes, and with --read-data every byte re-hashed',
  builder: (y) => y.option('read-data', { type: 'boolean', describe: 're-hash every pack and decode every chunk' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv, { uncached: true });
    const r = await fsck(repo, { readData: argv['read-data'] });
    for (const n of r.notes) out.info(`note: ${n}`);
    const c = r.checked;
    const summary =
      `${c.refs} refs, ${c.commits} commits, ${c.metaObjects} metadata objects, ${c.indexFiles} index files, ${c.packs} packs, ${c.chunks} chunks` +
      (argv['read-data'] ? `, ${humanBytes(c.bytesRead)} re-hashed` : '');
    if (r.ok) {
      out.result(r);
      out.line(`ok: ${summary}`);
      return;
    }
    for (const f of r.faults) out.line(`${f.kind}: ${f.message}`);
    // one JSON document either way: with --json the error carries the faults
    throw new CkptError('E_CORRUPT', `fsck found ${r.faults.length} fault(s) (${summary})`, { faults: r.faults, checked: r.checked });
  },
};
