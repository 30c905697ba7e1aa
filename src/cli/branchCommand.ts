import type { CommandModule } from 'yargs';
import { createRef, deleteRef, listRefs, switchBranch, type RefKind } from '../repo/branches.js';
import { openRepo, output, type Args } from './context.js';
import { shortId } from './output.js';

interface RefArgs {
  name?: string;
  rev?: string;
  delete?: string;
  switch?: boolean;
}

function refCommand(kind: RefKind): CommandModule<object, Args<RefArgs>> {
  const noun = kind === 'heads' ? 'branch' : 'tag';
  return {
    command: `${noun} [name] [rev]`,
    describe: kind === 'heads' ? 'list, create or delete branches' : 'list, create or delete tags',
    builder: (y) => {
      const b = y
        .positional('name', { type: 'string' })
        .positional('rev', { type: 'string', describe: 'commit to point at (default HEAD)' })
        .option('delete', { alias: 'd', type: 'string', describe: `delete this ${noun}` });
      return (kind === 'heads' ? b.option('switch', { type: 'boolean', describe: 'make HEAD point to the branch' }) : b) as never;
    },
    handler: async (argv) => {
      const out = output(argv);
      const repo = await openRepo(argv);
      if (argv.delete) {
        const id = await deleteRef(repo, kind, argv.delete);
        out.result({ deleted: argv.delete, was: id });
        return out.line(`Deleted ${noun} ${argv.delete} (was ${shortId(id)})`);
      }
      if (argv.name) {
        if (kind === 'heads' && argv.switch) {
          const exists = (await listRefs(repo, kind)).some((r) => r.name === argv.name);
          await switchBranch(repo, argv.name, !exists);
          out.result({ switched: argv.name });
          return out.line(`Switched to branch ${argv.name}`);
        }
        const id = await createRef(repo, kind, argv.name, argv.rev ?? 'HEAD');
        out.result({ created: argv.name, id });
        return out.line(`Created ${noun} ${argv.name} at ${shortId(id)}`);
      }
      const refs = await listRefs(repo, kind);
      out.result(refs);
      for (const r of refs) out.line(`${r.current ? '*' : ' '} ${r.name.padEnd(20)} ${shortId(r.id)}`);
    },
  };
}

export const branchCommand = refCommand('heads');
export const tagCommand = refCommand('tags');
