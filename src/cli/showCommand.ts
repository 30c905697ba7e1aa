import type { CommandModule } from 'yargs';
import { showCommit } from '../repo/showCommit.js';
import { openRepo, output, type Args } from './context.js';
import { humanBytes, table } from './output.js';

export const showCommand: CommandModule<object, Args<{ rev: string }>> = {
  command: 'show [rev]',
  describe: 'show a commit: metadata, files, tensors (dtype, shape, bytes)',
  builder: (y) => y.positional('rev', { type: 'string', default: 'HEAD' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const r = await showCommit(repo, argv.rev);
    out.result(r);
    const c = r.commit;
    out.line(out.paint(33, `commit ${r.id}`));
    if (c.parents.length) out.line(`parent ${c.parents.join(' ')}`);
    out.line(`author ${c.author}`);
    out.line(`date   ${new Date(c.time).toISOString()}`);
    if (c.meta.step !== undefined) out.line(`step   ${c.meta.step}`);
    if (c.meta.epoch !== undefined) out.line(`epoch  ${c.meta.epoch}`);
    for (const [k, v] of Object.entries(c.meta.metrics ?? {})) out.line(`metric ${k} = ${v}`);
    for (const [k, v] of Object.entries(c.meta.params ?? {})) out.line(`param  ${k} = ${v}`);
    if (c.code) out.line(`code   ${c.code.commit ?? '?'}${c.code.dirty ? ' (dirty)' : ''}${c.code.branch ? ` on ${c.code.branch}` : ''}`);
    out.line();
    out.line(`    ${c.message.split('\n').join('\n    ')}`);
    for (const f of r.files) {
      out.line();
      out.line(`${out.paint(1, f.path)}  ${f.format}, ${humanBytes(f.size)}, ${f.tensors.length} tensors, b3 ${f.hash.slice(0, 16)}`);
      for (const w of f.warnings ?? []) out.line(out.paint(31, `  warning: ${w}`));
      const rows = f.tensors.map((t) => [
        `  ${t.name}`,
        t.dtype,
        `[${t.shape.join(', ')}]`,
        humanBytes(t.bytes),
        r.shards?.[t.name] && r.shards[t.name] !== f.path ? r.shards[t.name] : '',
      ]);
      for (const l of table(rows, [3])) out.line(l);
      if (f.info && Object.keys(f.info).length) out.line(`  info: ${JSON.stringify(f.info).slice(0, 2000)}`);
    }
  },
};
