import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { CommandModule } from 'yargs';
import { UsageError } from '../core/errors.js';
import { startStoreServer } from '../serve/storeServer.js';
import { cwdOf, ioOf, output, refuseStoreArg, type Args } from './context.js';

type ServeArgs = Args<{
  root?: string;
  host: string;
  port: number;
  'read-token'?: string;
  'write-token'?: string;
  'admin-token'?: string;
  'max-body'?: number;
  'max-uploads'?: number;
  'idle-timeout'?: number;
  'headers-timeout'?: number;
  'request-timeout'?: number;
}>;

function positive(name: string, v: number | undefined, integer = true): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isSafeInteger(v))) throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got ${v}`);
  return v;
}

const seconds = (name: string, v: number | undefined) => {
  const s = positive(name, v, false);
  return s === undefined ? undefined : Math.round(s * 1000);
};

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
      .option('admin-token', { type: 'string', describe: 'bearer token needed to delete objects (or $CKPT_ADMIN_TOKEN); a write token never deletes' })
      .option('max-body', { type: 'number', describe: 'largest pack upload in bytes (default 1 GiB)' })
      .option('max-uploads', { type: 'number', describe: 'uploads at once; more are told to retry (default 8)' })
      .option('idle-timeout', { type: 'number', describe: 'seconds a connection or an upload may make no progress (default 60)' })
      .option('headers-timeout', { type: 'number', describe: 'seconds a request\'s headers may take (default 30)' })
      .option('request-timeout', { type: 'number', describe: 'seconds a whole request may take (default 7200)' }) as never,
  handler: async (argv) => {
    refuseStoreArg(argv, 'serve');
    const out = output(argv);
    const root = path.resolve(cwdOf(argv), argv.root ?? '.');
    const env = ioOf(argv).env;
    if (!Number.isSafeInteger(argv.port) || argv.port < 0 || argv.port > 65535) throw new UsageError(`--port must be 0..65535, got ${argv.port}`);
    const st = await fs.stat(root).catch(() => undefined);
    if (st && !st.isDirectory()) throw new UsageError(`--root ${root} is not a folder`);
    const headersTimeoutMs = seconds('headers-timeout', argv['headers-timeout']);
    const requestTimeoutMs = seconds('request-timeout', argv['request-timeout']);
    const server = await startStoreServer({
      root,
      host: argv.host,
      port: argv.port,
      readToken: argv['read-token'] ?? env.CKPT_READ_TOKEN,
      writeToken: argv['write-token'] ?? env.CKPT_WRITE_TOKEN,
      adminToken: argv['admin-token'] ?? env.CKPT_ADMIN_TOKEN,
      maxBodyBytes: positive('max-body', argv['max-body']),
      maxUploads: positive('max-uploads', argv['max-uploads']),
      idleTimeoutMs: seconds('idle-timeout', argv['idle-timeout']),
      headersTimeoutMs,
      requestTimeoutMs: requestTimeoutMs === undefined || headersTimeoutMs === undefined ? requestTimeoutMs : Math.max(requestTimeoutMs, headersTimeoutMs),
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
