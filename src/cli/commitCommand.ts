import { promises as fs } from 'node:fs';
import type { CommandModule } from 'yargs';
import { CkptError, UsageError } from '../core/errors.js';
import type { CommitMeta } from '../core/objects.js';
import { commitFiles, type CommitOptions } from '../repo/commit.js';
import { attemptId, commitPart, parsePart } from '../repo/parts.js';
import type { Repository } from '../repo/repository.js';
import { argPath, keyValues, numberOption, openRepo, output, parseNumber, parseParam, type Args } from './context.js';
import { humanBytes, shortId } from './output.js';

interface CommitArgs {
  paths: string[];
  message: string;
  step?: string;
  epoch?: string;
  metric?: string[];
  param?: string[];
  branch?: string;
  format?: string;
  'allow-unsafe-pickle'?: boolean;
  compress?: boolean;
  'with-code'?: boolean;
  'meta-file'?: string;
  root?: string;
  part?: string;
  group?: string;
  attempt?: string;
}

/** `--meta-file`: {step, epoch, metrics, params, extra}; any other key goes into extra. */
async function readMetaFile(file: string): Promise<CommitMeta> {
  let v: unknown;
  try {
    v = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (e) {
    throw new CkptError('E_USAGE', `--meta-file ${file}: ${(e as Error).message}`, { file });
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`--meta-file ${file}: expected a JSON object`);
  const { step, epoch, metrics, params, extra, ...rest } = v as Record<string, unknown>;
  const meta: CommitMeta = {};
  const num = (x: unknown, what: string) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new UsageError(`--meta-file ${file}: ${what} must be a number`);
    return x;
  };
  if (step !== undefined) meta.step = num(step, 'step');
  if (epoch !== undefined) meta.epoch = num(epoch, 'epoch');
  const obj = (x: unknown, what: string) => {
    if (!x || typeof x !== 'object' || Array.isArray(x)) throw new UsageError(`--meta-file ${file}: ${what} must be an object`);
    return x as Record<string, unknown>;
  };
  if (metrics !== undefined) meta.metrics = Object.fromEntries(Object.entries(obj(metrics, 'metrics')).map(([k, x]) => [k, num(x, `metric ${k}`)]));
  if (params !== undefined) {
    meta.params = Object.fromEntries(
      Object.entries(obj(params, 'params')).map(([k, x]) => {
        if (!['string', 'number', 'boolean'].includes(typeof x)) throw new UsageError(`--meta-file ${file}: param ${k} must be a string, number or boolean`);
        return [k, x as string | number | boolean];
      }),
    );
  }
  const more = { ...(extra === undefined ? {} : obj(extra, 'extra')), ...rest };
  if (Object.keys(more).length) meta.extra = more;
  return meta;
}

/** Says once per store, not once per commit of a training loop, that provenance is off. */
async function noteNoGitOnce(repo: Repository, say: (s: string) => void): Promise<void> {
  if (!(await repo.store.firstTime('no-git-noted'))) return;
  say('ckpt: note: not in a Git work tree, so no code provenance is recorded (said once per store)');
}

export const commitCommand: CommandModule<object, Args<CommitArgs>> = {
  command: 'commit <paths..>',
  describe: 'store checkpoint files (a folder commits as one tree) as a new commit',
  builder: (y) =>
    y
      .positional('paths', { type: 'string', array: true, demandOption: true })
      .option('message', { alias: 'm', type: 'string', demandOption: true, describe: 'commit message' })
      .option('step', { type: 'string', describe: 'training step (a whole number)' })
      .option('epoch', { type: 'string', describe: 'training epoch' })
      .option('metric', { type: 'string', array: true, describe: 'k=v, numeric (repeatable)' })
      .option('param', { type: 'string', array: true, describe: 'k=v hyperparameter (repeatable)' })
      .option('branch', { type: 'string', describe: 'commit onto this branch (created at HEAD if missing)' })
      .option('format', { type: 'string', describe: 'parse as this format instead of detecting it' })
      .option('allow-unsafe-pickle', { type: 'boolean', describe: 'store a pickle that would run code on load' })
      .option('compress', { type: 'boolean', default: true, describe: 'compress chunks (--no-compress to store plain)' })
      .option('with-code', { type: 'boolean', describe: 'also store the changed and untracked code files (default: config withCode)' })
      .option('meta-file', { type: 'string', describe: 'JSON file of {step, epoch, metrics, params, extra}; flags win' })
      .option('root', { type: 'string', describe: 'store paths relative to this folder (a checkpoint folder checks out as itself)' })
      .option('part', { type: 'string', describe: 'RANK/COUNT: store this rank\'s files; the last rank makes the one commit' })
      .option('group', { type: 'string', describe: 'with --part: the id every rank of this checkpoint shares (unique per checkpoint)' })
      .option('attempt', { type: 'string', describe: 'with --part: this run\'s id (default: $CKPT_ATTEMPT, $SLURM_JOB_ID or $TORCHELASTIC_RUN_ID); parts of different runs never combine' }) as never,
  handler: async (argv) => {
    const step = numberOption(argv.step, 'step', { whole: true });
    const epoch = numberOption(argv.epoch, 'epoch');
    const metrics = keyValues(argv.metric, 'metric', parseNumber);
    const out = output(argv);
    const repo = await openRepo(argv);
    const progress = out.progress('commit');
    const params = keyValues(argv.param, 'param', parseParam);
    const fromFile = argv['meta-file'] ? await readMetaFile(argPath(argv, argv['meta-file'])) : {};
    try {
      const paths = argv.paths.map((p) => argPath(argv, p));
      const options: CommitOptions = {
        message: argv.message,
        meta: {
          ...fromFile,
          ...(step !== undefined ? { step } : {}),
          ...(epoch !== undefined ? { epoch } : {}),
          ...(metrics || fromFile.metrics ? { metrics: { ...fromFile.metrics, ...metrics } } : {}),
          ...(params || fromFile.params ? { params: { ...fromFile.params, ...params } } : {}),
        },
        provenance: { withCode: argv['with-code'] ?? repo.store.config.withCode ?? false },
        branch: argv.branch,
        format: argv.format,
        allowUnsafePickle: argv['allow-unsafe-pickle'],
        compress: argv.compress,
        onProgress: (d, t) => progress.update(d, t),
        ...(argv.root !== undefined ? { treeRoot: argPath(argv, argv.root) } : {}),
      };
      if (argv.part !== undefined || argv.group !== undefined) {
        const p = await commitPart(repo, paths, parsePart(argv.part ?? '', argv.group, attemptId(argv.attempt)), options);
        progress.stop();
        out.result(p);
        out.line(`part ${p.rank}/${p.of} of ${p.group}: ${p.files.length} file(s) stored as ${shortId(p.part)}`);
        if (p.commit) out.line(`${p.combined ? 'all parts here: committed' : 'all parts here: already committed as'} ${shortId(p.commit)}`);
        else out.line(`waiting for rank(s) ${p.missing.join(', ')}`);
        return;
      }
      const r = await commitFiles(repo, paths, options);
      progress.stop();
      if (r.noGit && !out.json && !out.quiet) await noteNoGitOnce(repo, (t) => out.info(t));
      for (const w of r.warnings) out.info(`ckpt: warning: ${w}`);
      out.result(r);
      const where = r.branch ? r.branch.replace(/^refs\/heads\//, '') : 'detached HEAD';
      out.line(`[${where} ${shortId(r.id)}] ${argv.message.split('\n')[0]}`);
      out.line(
        ` ${r.files.length} file(s), ${humanBytes(r.stats.bytes)}; ${r.stats.newChunks}/${r.stats.chunks} chunks new, ` +
          `${humanBytes(r.stats.newRawBytes)} new data stored as ${humanBytes(r.stats.storedBytes)}`,
      );
      if (r.code) {
        const c = r.code;
        const stored = c.files ? ', changed files stored' : '';
        out.line(` code ${c.commit ? shortId(c.commit) : '(no Git commit yet)'}${c.branch ? ` on ${c.branch}` : ''}${c.dirty ? ` (dirty: ${c.changed?.length ?? 0} changed${stored})` : ''}`);
      }
    } finally {
      progress.stop();
    }
  },
};
