/**
 * An S3 server on 127.0.0.1 for tests: moto (which honours conditional writes, so ref
 * compare-and-swap is really tested) when it is installed, else s3rver from npm (which ignores
 * them: callers skip the CAS tests and say why).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

export interface S3TestServer {
  kind: 'moto' | 's3rver';
  endpoint: string;
  bucket: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Whether If-Match / If-None-Match on writes are enforced. */
  conditionalWrites: boolean;
  /** A raw client, for tests that plant bytes behind the transport's back. */
  client: S3Client;
  stop(): Promise<void>;
}

const motoCredentials = { accessKeyId: 'ckpt-test', secretAccessKey: 'ckpt-test-secret' };
// s3rver accepts only its own fixed key pair
const s3rverCredentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
const region = 'us-east-1';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** How long moto may take to answer its first request before the start counts as failed. */
const MOTO_START_MS = 100_000; // within vitest's 120 s hook timeout

/**
 * motoServer.py beside this file (in the source tree; a compiled copy of this module finds it from
 * dist/) runs moto with its writes one at a time, so a conditional write is atomic as on S3;
 * moto_server itself lets two racing PUTs with one If-Match both land.
 */
const ATOMIC_MOTO = [new URL('./motoServer.py', import.meta.url), new URL('../../../test/backend/motoServer.py', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((f) => existsSync(f));

const MOTO_COMMANDS: readonly (readonly [string, readonly string[]])[] = [
  ...(ATOMIC_MOTO ? [['python3', [ATOMIC_MOTO]] as const] : []),
  ['moto_server', []],
  ['python3', ['-m', 'moto.server']],
];

/** Known before tests are registered, so a suite can mark its CAS tests skipped up front. */
export function motoAvailable(): boolean {
  return (
    spawnSync('sh', ['-c', 'command -v moto_server'], { stdio: 'ignore' }).status === 0 ||
    spawnSync('python3', ['-c', 'import moto.server'], { stdio: 'ignore' }).status === 0
  );
}

/** Starts moto by each way it may be installed; undefined when none works. */
async function startMoto(): Promise<{ port: number; child: ChildProcess } | undefined> {
  for (const [cmd, pre] of MOTO_COMMANDS) {
    const port = await freePort();
    const child = spawn(cmd, [...pre, '-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, AWS_ACCESS_KEY_ID: motoCredentials.accessKeyId, AWS_SECRET_ACCESS_KEY: motoCredentials.secretAccessKey },
    });
    let gone = false;
    child.once('error', () => (gone = true));
    child.once('exit', () => (gone = true));
    child.stderr?.resume();
    // moto is a Python program: on a loaded 2-core machine it has taken over 30 s to answer
    const deadline = Date.now() + MOTO_START_MS;
    while (!gone && Date.now() < deadline) {
      if (await answers(port)) return { port, child };
      await new Promise((r) => setTimeout(r, 100));
    }
    await stopChild(child);
  }
  return undefined;
}

export async function startS3Server(bucket = 'ckpt-test-bucket'): Promise<S3TestServer> {
  const moto = await startMoto();
  // Where moto is installed the suites have already registered its conditional-write and range
  // tests; quietly swapping in s3rver would run them against a server that ignores both.
  if (!moto && motoAvailable()) throw new Error(`moto_server is installed but did not answer within ${MOTO_START_MS / 1000} s`);
  let kind: S3TestServer['kind'];
  let endpoint: string;
  let stopServer: () => Promise<void>;
  if (moto) {
    kind = 'moto';
    endpoint = `http://127.0.0.1:${moto.port}`;
    stopServer = () => stopChild(moto.child);
  } else {
    kind = 's3rver';
    const require = createRequire(import.meta.url);
    const S3rver = require('s3rver') as new (o: Record<string, unknown>) => {
      run(): Promise<{ port: number }>;
      close(): Promise<void>;
    };
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-s3rver-'));
    const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir });
    const { port } = await server.run();
    endpoint = `http://127.0.0.1:${port}`;
    stopServer = async () => {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    };
  }
  const credentials = kind === 'moto' ? motoCredentials : s3rverCredentials;
  const client = new S3Client({ region, endpoint, forcePathStyle: true, credentials });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    kind,
    endpoint,
    bucket,
    region,
    credentials,
    conditionalWrites: kind === 'moto',
    client,
    async stop() {
      client.destroy();
      await stopServer();
    },
  };
}
