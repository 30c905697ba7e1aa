/**
 * Stores for `ckpt --store` tests, one per backend, all on 127.0.0.1: a folder, `ckpt serve` (the
 * store server, in this process) and moto S3. Each hands out URLs of new, empty stores and the
 * environment the CLI needs to reach them ($CKPT_TOKEN, $AWS_*). A server can be reached through
 * a byte-counting TCP proxy, so a test measures what really crosses the wire, headers included.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { HttpBackend } from '../../src/backend/httpBackend.js';
import { startStoreServer, type StoreServer } from '../../src/serve/storeServer.js';
import { motoAvailable, startS3Server, type S3TestServer } from '../backend/s3Server.js';
import { tempDir } from './helpers.js';

export type StoreKind = 'folder' | 'http' | 's3';
export const STORE_KINDS: StoreKind[] = ['folder', 'http', 's3'];

/**
 * Whether a kind of store can hold a ckpt store yet: the HTTP and S3 drivers need the store files
 * (config, HEAD), ranged readers and locks of the backend interface; until they have them, their
 * `--store` tests are skipped rather than failing at the first open.
 */
export async function storeKindReady(kind: StoreKind): Promise<{ ready: boolean; why?: string }> {
  if (kind === 'folder') return { ready: true };
  if (kind === 's3' && !motoAvailable()) return { ready: false, why: 'moto_server is not installed' };
  const proto = kind === 'http' ? HttpBackend.prototype : (await import('../../src/backend/s3Backend.js')).S3Backend.prototype;
  const ready = ['readFile', 'writeFile', 'openRanges', 'lockShared', 'lockExclusive'].every((m) => typeof (proto as unknown as Record<string, unknown>)[m] === 'function');
  return ready ? { ready } : { ready, why: `the ${kind} driver does not hold store files yet (readFile/writeFile/locks)` };
}

/** Bytes through a proxy: `up` from the client to the server, `down` back. */
export interface WireBytes {
  up: number;
  down: number;
}

export interface CountingProxy {
  port: number;
  bytes: WireBytes;
  reset(): void;
  close(): Promise<void>;
}

/** A TCP proxy to 127.0.0.1:`target` that counts every byte each way. */
export async function countingProxy(target: number): Promise<CountingProxy> {
  const bytes: WireBytes = { up: 0, down: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (b: Buffer) => (bytes.up += b.length));
    upstream.on('data', (b: Buffer) => (bytes.down += b.length));
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes,
    reset() {
      bytes.up = 0;
      bytes.down = 0;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface TestStores {
  kind: StoreKind;
  /** The URL (or path) of a new, empty store. */
  newUrl(name?: string): string;
  /** What the CLI needs in its environment to reach these stores. */
  env: Record<string, string>;
  /** For a folder store or a store served over HTTP: the folder that holds it. */
  folderOf?(url: string): string;
  s3?: S3TestServer;
  /** Set when `counting` was asked for: the proxy every request goes through. */
  proxy?: CountingProxy;
  stop(): Promise<void>;
}

export const ADMIN_TOKEN = 'store-admin-token';
export const WRITE_TOKEN = 'store-write-token';

let n = 0;

/** Starts the stores of one kind; with `counting`, the server is reached through a counting proxy. */
export async function startStores(kind: StoreKind, opts: { counting?: boolean } = {}): Promise<TestStores> {
  if (kind === 'folder') {
    const root = await tempDir('ckpt-store-folder-');
    return { kind, newUrl: (name) => path.join(root, name ?? `s${++n}`), env: {}, folderOf: (u) => u, stop: async () => undefined };
  }
  if (kind === 'http') {
    const root = await tempDir('ckpt-store-http-');
    const server: StoreServer = await startStoreServer({ root, writeToken: WRITE_TOKEN, adminToken: ADMIN_TOKEN, log: () => undefined });
    const proxy = opts.counting ? await countingProxy(server.port) : undefined;
    const base = proxy ? `http://127.0.0.1:${proxy.port}` : server.url.replace(/\/$/, '');
    return {
      kind,
      newUrl: (name) => `${base}/${name ?? `s${++n}`}`,
      env: { CKPT_TOKEN: ADMIN_TOKEN },
      folderOf: (u) => path.join(root, u.split('/').pop()!),
      proxy,
      async stop() {
        await proxy?.close();
        await server.close();
      },
    };
  }
  const s3 = await startS3Server();
  const proxy = opts.counting ? await countingProxy(Number(new URL(s3.endpoint).port)) : undefined;
  return {
    kind,
    s3,
    newUrl: (name) => `s3://${s3.bucket}/stores/${name ?? `s${++n}`}`,
    env: {
      AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
      AWS_REGION: s3.region,
      AWS_ENDPOINT_URL_S3: proxy ? `http://127.0.0.1:${proxy.port}` : s3.endpoint,
    },
    proxy,
    async stop() {
      await proxy?.close();
      await s3.stop();
    },
  };
}
