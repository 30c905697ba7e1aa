import type { CommandModule } from 'yargs';
import { startStoreServer } from '../remote/storeServer.js';
import { cwdOf, ioOf, output, type Args } from './context.js';

type ServeArgs = Args<{
  root?: string;
  host: string;
  port: number;
  'read-token'?: string;
  'write-token'?: string;
  'max-body'?: number;
}>;

export const serveCommand: CommandModule<object, ServeArgs> = {
  command: 'serve',
  describe: 'serve the stores under a folder over HTTP (http://host:port/<name>), one log line per request',
  builder: (y) =>
    y
      .option('root', { type: 'string', describe: 'folder whose subfolders are served as repositories (default: here)' })
      .option('host', { type: 'string', default: '127.0.0.1', describe: 'address to listen on' })
      .option('port', { type: 'number', default: 8417, describe: 'port (0: any free port)' })
      .option('read-token', { type: 'string', describe: 'bearer token needed to read (or $CKPT_READ_TOKEN)' })
      .option('write-token', { type: 'string', describe: 'bearer token needed to write (or $CKPT_WRITE_TOKEN)' })
      .option('max-body', { type: 'number', describe: 'largest upload in bytes (default 1 GiB)' }) as never,
  handler: async (argv) => {
    const out = output(argv);
    const root = argv.root ?? cwdOf(argv);
    const env = ioOf(argv).env;
    const server = await startStoreServer({
      root,
      host: argv.host,
      port: argv.port,
      readToken: argv['read-token'] ?? env.CKPT_READ_TOKEN,
      writeToken: argv['write-token'] ?? env.CKPT_WRITE_TOKEN,
      maxBodyBytes: argv['max-body'],
    });
    out.result({ url: server.url, port: server.port, root });
    out.line(`serving ${root} at ${server.url}/<name>`);
    // stop taking requests, let in-flight ones finish, then exit 0: a supervisor's SIGTERM is routine
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        out.info('shutting down');
        server.close().then(resolve, resolve);
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
  },
};
