import type { CommandModule } from 'yargs';
import { addRemote, listRemotes, removeRemote } from '../sync/remoteConfig.js';
import { openRepo, output, type Args } from './context.js';

type RemoteArgs = Args<{
  name?: string;
  url?: string;
  region?: string;
  endpoint?: string;
  token?: string;
  'access-key-id'?: string;
  'secret-access-key'?: string;
}>;

const add: CommandModule<object, RemoteArgs> = {
  command: 'add <name> <url>',
  describe: 'add a remote: a path or file://, http(s)://host:port/repo (ckpt serve), s3://bucket/prefix',
  builder: (y) =>
    y
      .positional('name', { type: 'string', demandOption: true })
      .positional('url', { type: 'string', demandOption: true })
      .option('region', { type: 'string', describe: 'S3 region' })
      .option('endpoint', { type: 'string', describe: 'S3-compatible server URL' })
      .option('token', { type: 'string', describe: 'bearer token for ckpt serve (kept in .ckpt/config.local)' })
      .option('access-key-id', { type: 'string', describe: 'S3 key (kept in .ckpt/config.local; default: the AWS chain)' })
      .option('secret-access-key', { type: 'string', describe: 'S3 secret (kept in .ckpt/config.local)' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const repo = await openRepo(argv, { folderOnly: 'remote' });
    await addRemote(
      repo,
      argv.name!,
      { url: argv.url!, region: argv.region, endpoint: argv.endpoint },
      { token: argv.token, accessKeyId: argv['access-key-id'], secretAccessKey: argv['secret-access-key'] },
    );
    out.result({ added: argv.name, url: argv.url });
    out.line(`Added remote ${argv.name} ${argv.url}`);
  },
};

const remove: CommandModule<object, RemoteArgs> = {
  command: 'remove <name>',
  aliases: ['rm'],
  describe: 'remove a remote, its credentials and its remote-tracking refs',
  builder: (y) => y.positional('name', { type: 'string', demandOption: true }) as never,
  handler: async (argv) => {
    const out = output(argv);
    await removeRemote(await openRepo(argv, { folderOnly: 'remote' }), argv.name!);
    out.result({ removed: argv.name });
    out.line(`Removed remote ${argv.name}`);
  },
};

const list: CommandModule<object, RemoteArgs> = {
  command: 'list',
  aliases: ['ls'],
  describe: 'list remotes',
  handler: async (argv) => {
    const out = output(argv);
    const remotes = listRemotes(await openRepo(argv, { folderOnly: 'remote' }));
    out.result(remotes);
    for (const r of remotes) out.line(`${r.name}\t${r.url}${r.region ? `\tregion=${r.region}` : ''}${r.endpoint ? `\tendpoint=${r.endpoint}` : ''}`);
  },
};

export const remoteCommand: CommandModule<object, RemoteArgs> = {
  command: 'remote <action>',
  describe: 'manage remotes (add, remove, list)',
  builder: (y) => y.command(add).command(remove).command(list).demandCommand(1, 'name an action: add, remove or list') as never,
  handler: () => undefined,
};
