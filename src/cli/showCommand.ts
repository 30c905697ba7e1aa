import type { CommandModule } from 'yargs';
import type { ObjectId } from '../core/objectId.js';
import type { CodeProvenance } from '../core/objects.js';
import { describeRecipe, recipeOf } from '../merge/recipe.js';
import { showCommit } from '../repo/showCommit.js';
import { openRepo, output, type Args } from './context.js';
import type { Output } from './output.js';
import { humanBytes, shortId, table } from './output.js';
import { modeOption, withMode } from './revisionMode.js';

/** How to get back the code a checkpoint was trained with. */
function showCode(out: Output, id: ObjectId, code: CodeProvenance | undefined): void {
  if (!code) return out.line('no code provenance recorded (the commit was not made in a Git work tree)');
  out.line(`git commit  ${code.commit ?? '(the Git repository had no commit yet)'}`);
  if (code.branch) out.line(`branch      ${code.branch}`);
  if (code.remote) out.line(`remote      ${code.remote}`);
  out.line(`dirty       ${code.dirty ? 'yes' : 'no'}`);
  for (const f of code.changed ?? []) out.line(`  changed   ${f}`);
  for (const f of code.untracked ?? []) out.line(`  untracked ${f}`);
  const uncommitted = (code.changed?.length ?? 0) + (code.untracked?.length ?? 0);
  out.line();
  out.line('to reproduce:');
  if (code.commit) out.line(`  git checkout ${code.commit}`);
  if (uncommitted > 0 && code.files) out.line(`  ckpt restore-code ${shortId(id)}`);
  else if (uncommitted > 0) out.line('  (the uncommitted files were not stored: commit with --with-code to keep them)');
}

export const showCommand: CommandModule<object, Args<{ rev: string; code?: boolean; mode?: string }>> = {
  command: 'show [rev]',
  describe: 'show a commit: metadata, files, tensors (dtype, shape, bytes)',
  builder: (y) =>
    y
      .positional('rev', { type: 'string', default: 'HEAD' })
      .option('code', { type: 'boolean', describe: 'show the code provenance: which Git commit to check out, what was uncommitted' })
      .option('mode', modeOption) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    const r = await showCommit(repo, withMode(argv.rev, argv.mode));
    const pruned = await repo.store.pruned.get(r.id);
    if (argv.code) {
      out.result({ id: r.id, code: r.commit.code ?? null });
      return showCode(out, r.id, r.commit.code);
    }
    out.result(pruned ? { ...r, pruned: { time: new Date(pruned.time).toISOString(), reason: pruned.reason } } : r);
    const c = r.commit;
    out.line(out.paint(33, `commit ${r.id}`));
    if (c.parents.length) out.line(`parent ${c.parents.join(' ')}`);
    out.line(`author ${c.author}`);
    out.line(`date   ${new Date(c.time).toISOString()}`);
    if (pruned) out.line(out.paint(31, `pruned ${new Date(pruned.time).toISOString()} (${pruned.reason}): the data is gone, the record stays`));
    if (c.meta.step !== undefined) out.line(`step   ${c.meta.step}`);
    if (c.meta.epoch !== undefined) out.line(`epoch  ${c.meta.epoch}`);
    for (const [k, v] of Object.entries(c.meta.metrics ?? {})) out.line(`metric ${k} = ${v}`);
    for (const [k, v] of Object.entries(c.meta.params ?? {})) out.line(`param  ${k} = ${v}`);
    const recipe = recipeOf(c);
    if (recipe) out.line(`merge  ${describeRecipe(recipe)}`);
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
