/**
 * The quick parser (src/cli/quickArgs.ts) gives each command's handler the argv yargs would give,
 * for the plain command lines it takes on; every other line it leaves to yargs.
 */
import { describe, expect, it } from 'vitest';
import type { CommandModule } from 'yargs';
import { quickArgs } from '../../src/cli/quickArgs.js';
import { yargsCli } from '../../src/cli/yargsCli.js';
import { branchCommand, tagCommand } from '../../src/cli/branchCommand.js';
import { checkoutCommand } from '../../src/cli/checkoutCommand.js';
import { commitCommand } from '../../src/cli/commitCommand.js';
import { diffCommand } from '../../src/cli/diffCommand.js';
import { duCommand } from '../../src/cli/duCommand.js';
import { fsckCommand } from '../../src/cli/fsckCommand.js';
import { gcCommand } from '../../src/cli/gcCommand.js';
import { initCommand } from '../../src/cli/initCommand.js';
import { logCommand } from '../../src/cli/logCommand.js';
import { showCommand } from '../../src/cli/showCommand.js';
import { statusCommand } from '../../src/cli/statusCommand.js';

type Cmd = CommandModule<object, never>;

/** yargs' argv for `argv` with `c` registered, or its failure. */
async function viaYargs(c: Cmd, argv: string[]): Promise<Record<string, unknown>> {
  let got: Record<string, unknown> | undefined;
  let failed: unknown;
  const cli = yargsCli(argv, '0', 100, [{ ...c, handler: (a: never) => void (got = a) } as Cmd], (msg, err) => (failed = err ?? msg));
  await cli.parseAsync(argv);
  if (failed !== undefined || !got) throw new Error(`yargs refused ${argv.join(' ')}: ${String(failed)}`);
  return got;
}

/** Keys with a value, as the handler reads them. */
const defined = (a: Record<string, unknown>) => Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined));

const typical: Array<[Cmd, string[]]> = [
  [logCommand, ['log']],
  [logCommand, ['log', '-n', '5']],
  [logCommand, ['log', 'main', '--max-count', '3', '--json']],
  [logCommand, ['log', '--metric', 'loss', '--graph', '--all']],
  [logCommand, ['log', '--metric', 'loss', '--metric', 'acc', '-n', '3', 'HEAD~2']],
  [logCommand, ['log', '--code=HEAD', '-q']],
  [statusCommand, ['status']],
  [statusCommand, ['status', '--json', '--cwd', 'sub']],
  [statusCommand, ['status', '--remote', 'origin', '--store', '/tmp/x']],
  [showCommand, ['show']],
  [showCommand, ['show', 'HEAD~1', '--json']],
  [showCommand, ['show', '123', '--code']],
  [showCommand, ['show', 'best:loss', '--mode', 'min']],
  [duCommand, ['du']],
  [duCommand, ['du', '--json', '-q']],
  [commitCommand, ['commit', '-q', '-m', 'again', 'model.safetensors']],
  [commitCommand, ['commit', '-m', 'step 5', '--step', '5', '--metric', 'loss=0.5', '--', 'a.pt']],
  [commitCommand, ['commit', 'a.pt', 'b.pt', '--message=two files', '--epoch', '1', '--branch', 'exp']],
  [commitCommand, ['commit', '-m', '', '--with-code', '--allow-unsafe-pickle', 'dir/', '--param', 'lr=0.1', '--param', 'bs=32']],
  [commitCommand, ['commit', '-m', 'x', '--meta-file', 'meta.json', '--root', 'out', '--part', '0/2', '--group', 'g1', 'f']],
  [checkoutCommand, ['checkout', 'HEAD~3', '-o', 'out.safetensors']],
  [checkoutCommand, ['checkout', 'main', 'a.pt', 'b.pt', '-q']],
  [checkoutCommand, ['checkout', 'v1', '--tensors', 'layers.*', '--output', 'o/']],
  [diffCommand, ['diff', 'HEAD~1']],
  [diffCommand, ['diff', 'HEAD~1', 'HEAD', '--top', '3', '--exit-code']],
  [diffCommand, ['diff', 'a.pt', 'b.pt', '--group-depth', '1', '--tensors', 'x*']],
  [branchCommand, ['branch']],
  [branchCommand, ['branch', 'exp', 'HEAD~2']],
  [branchCommand, ['branch', '-d', 'exp']],
  [branchCommand, ['branch', 'exp', '--switch']],
  [tagCommand, ['tag', 'v1']],
  [gcCommand, ['gc', '-q']],
  [fsckCommand, ['fsck', '--read-data', '--json']],
  [initCommand, ['init', '--chunk-size', '65536']],
];

/** Lines the quick parser leaves to yargs (which parses them, or says what is wrong). */
const odd: Array<[Cmd, string[]]> = [
  [logCommand, ['log', '--help']],
  [logCommand, ['log', '--version']],
  [logCommand, ['log', '--no-graph']],
  [logCommand, ['log', '-qn', '5']],
  [logCommand, ['log', '--bogus']],
  [logCommand, ['log', 'a', 'b']],
  [logCommand, ['log', '-n']],
  [logCommand, ['log', '-n', '-1']],
  [logCommand, ['log', '--graph', 'true']],
  [logCommand, ['log', '--metric', 'loss', 'acc']],
  // yargs' arrays are greedy: HEAD~2 would be a metric
  [logCommand, ['log', '--metric', 'loss', '--metric', 'acc', 'HEAD~2']],
  [logCommand, ['log', '-n', '1', '-n', '2']],
  [showCommand, ['show', 'best:loss', '--mode', 'mid']],
  [commitCommand, ['commit', 'a.pt']],
  [commitCommand, ['commit', '-m', 'x']],
  [commitCommand, ['commit', '-m', '-x', 'a.pt']],
  [commitCommand, ['commit', '-m', 'x', '--no-compress', 'a.pt']],
  [checkoutCommand, ['checkout']],
  [diffCommand, ['diff', 'a', '--top', 'many']],
  [statusCommand, ['status', '--json=false']],
  [statusCommand, ['status', '-']],
];

describe('quick parser', () => {
  it.each(typical.filter(([, a]) => !a.includes('--')))('agrees with yargs: ckpt %#', async (c, argv) => {
    const quick = quickArgs(argv, c);
    expect(quick, argv.join(' ')).toBeDefined();
    expect(defined(quick!)).toEqual(defined(await viaYargs(c, argv)));
  });

  it.each([...odd, ...typical.filter(([, a]) => a.includes('--'))])('leaves odd lines to yargs: ckpt %#', (c, argv) => {
    expect(quickArgs(argv, c), argv.join(' ')).toBeUndefined();
  });
});
