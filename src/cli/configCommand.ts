import type { CommandModule } from 'yargs';
import { getSetting, listSettings, setSetting } from '../repo/settings.js';
import { openRepo, output, type Args } from './context.js';
import { table } from './output.js';

export const configCommand: CommandModule<object, Args<{ key?: string; value?: string }>> = {
  command: 'config [key] [value]',
  describe: 'show or change a setting (compression.mode, compression.level, ...)',
  builder: (y) => y.positional('key', { type: 'string' }).positional('value', { type: 'string' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv);
    if (argv.key === undefined) {
      const all = listSettings(repo);
      out.result(Object.fromEntries(all.map((s) => [s.key, s.value])));
      for (const l of table(all.map((s) => [s.key, String(s.value), s.describe]))) out.line(l);
      return;
    }
    const value = argv.value === undefined ? getSetting(repo, argv.key) : await setSetting(repo, argv.key, argv.value);
    out.result({ [argv.key]: value });
    out.line(String(value));
  },
};
