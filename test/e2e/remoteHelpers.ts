/**
 * Remotes for the end-to-end tests, one per transport, all on 127.0.0.1: a folder, a real
 * `ckpt serve` child process, and moto (or s3rver) for S3. Each hands out fresh remote URLs and
 * the extra arguments and environment the CLI needs to reach them.
 */
import * as path from 'node:path';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { startS3Server, type S3TestServer } from '../backend/s3Server.js';
import { randomF32, start, tempDir, type RunResult, type Running } from './helpers.js';
import { runIn } from './inProcess.js';

export type Kind = 'directory' | 'http' | 's3';
export const KINDS: Kind[] = ['directory', 'http', 's3'];

export interface TestRemote {
  kind: Kind;
  /** A URL for a new, empty remote. */
  newUrl(): string;
  /** Arguments for `remote add` and `clone` (region, endpoint, token). */
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Where a directory or HTTP remote keeps its files (for inspection). */
  dirOf?(url: string): string;
  s3?: S3TestServer;
  stop(): Promise<void>;
}

let n = 0;
export const WRITE_TOKEN = 'e2e-write-token';

/** Starts `ckpt serve` on a free port and waits for the line naming its URL. */
export async function startServe(root: string, extra: string[] = []): Promise<{ url: string; proc: Running }> {
  const proc = start(root, ['serve', '--root', root, '--port', '0', '--write-token', WRITE_TOKEN, ...extra]);
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    proc.child.stdout!.on('data', (b: Buffer) => {
      buf += b.toString('utf8');
      const m = /at (http:\/\/127\.0\.0\.1:\d+)\//.exec(buf);
      if (m) resolve(m[1]);
    });
    proc.done.then((r) => reject(new Error(`ckpt serve exited early: ${r.stderr}`)), reject);
  });
  return { url, proc };
}

export async function startRemote(kind: Kind): Promise<TestRemote> {
  if (kind === 'directory') {
    const root = await tempDir('ckpt-remote-dir-');
    return { kind, newUrl: () => path.join(root, `r${++n}`), args: [], env: {}, dirOf: (u) => u, stop: async () => undefined };
  }
  if (kind === 'http') {
    const root = await tempDir('ckpt-remote-http-');
    const { url, proc } = await startServe(root);
    return {
      kind,
      newUrl: () => `${url}/r${++n}`,
      args: ['--token', WRITE_TOKEN],
      env: {},
      dirOf: (u) => path.join(root, u.split('/').pop()!),
      async stop() {
        proc.child.kill('SIGTERM');
        const r: RunResult = await proc.done;
        if (r.code !== 0) throw new Error(`ckpt serve did not stop cleanly on SIGTERM: ${r.code ?? r.signal}\n${r.stderr}`);
      },
    };
  }
  const s3 = await startS3Server();
  return {
    kind,
    s3,
    newUrl: () => `s3://${s3.bucket}/e2e/r${++n}`,
    args: ['--endpoint', s3.endpoint, '--region', s3.region],
    env: { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey },
    stop: () => s3.stop(),
  };
}

/**
 * Runs `ckpt args...` in process. The AWS SDK reads its credentials from process.env only, so
 * the S3 test server's keys (the same for the whole test file) are set there as well.
 */
export function run(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<RunResult> {
  for (const [k, v] of Object.entries(env)) if (k.startsWith('AWS_')) process.env[k] = v;
  return runIn(cwd, args, env);
}

export async function runOk(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
  const r = await run(cwd, env, ...args);
  if (r.code !== 0) throw new Error(`ckpt ${args.join(' ')} exited ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r.stdout;
}

export async function runJson<T = any>(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]): Promise<T> {
  return JSON.parse(await runOk(cwd, env, ...args, '--json')) as T;
}

/** A safetensors model of `seeds.length` F32 tensors of `elements` each. */
export function model(seeds: number[], elements: number): Uint8Array {
  return writeSafetensors(seeds.map((seed, i) => ({ name: `layers.${i}.weight`, dtype: 'F32', shape: [elements], data: randomF32(seed, elements) })));
}

/**
 * The remote's consistency check: a fresh clone (every chunk re-hashed on receipt) whose store
 * then passes `ckpt fsck --read-data`. Returns the remote's refs as the clone saw them.
 */
export async function checkRemote(r: TestRemote, url: string): Promise<Record<string, string>> {
  const dir = await tempDir('ckpt-check-');
  const c = await runJson(dir, r.env, 'clone', url, 'c', '--no-checkout', ...r.args);
  const f = await runJson(path.join(dir, 'c'), r.env, 'fsck', '--read-data');
  if (!f.ok) throw new Error(`fsck of a clone of ${url} failed: ${JSON.stringify(f.faults)}`);
  return c.fetch.refs;
}
