/**
 * The options every command takes, one definition for both parsers of a command line: yargs
 * (yargsCli.ts) and the quick parser of plain command lines (quickArgs.ts).
 */
export const GLOBAL_OPTIONS = {
  json: { type: 'boolean', describe: 'machine-readable output on stdout', global: true },
  quiet: { alias: 'q', type: 'boolean', describe: 'no progress or notes on stderr', global: true },
  progress: { type: 'boolean', describe: 'transfer progress (bytes, rate, ETA) on stderr even when it is not a terminal', global: true },
  cwd: { type: 'string', describe: 'run as if started in this folder', global: true, hidden: true },
  store: { type: 'string', describe: 'the store to use instead of .ckpt/: a folder, http://host:port/name or s3://bucket/prefix (or $CKPT_STORE)', global: true },
} as const;
