/**
 * Runs the shared backend suite against every backend: a folder, a real storeServer on
 * 127.0.0.1, and an S3 server on 127.0.0.1 (moto, or s3rver without the CAS race tests); then
 * what is particular to each (URLs, tokens, a flaky or lying HTTP peer).
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../src/backend/localBackend.js';
import { HttpBackend } from '../../src/backend/httpBackend.js';
import { openBackend } from '../../src/backend/openBackend.js';
import { RetryingBackend } from '../../src/backend/retryingBackend.js';
import { S3Backend } from '../../src/backend/s3Backend.js';
import { startStoreServer, type StoreServer } from '../../src/serve/storeServer.js';
import { markKey } from '../../src/backend/objectKeys.js';
import { parseReflog } from '../../src/backend/reflogLine.js';
import { backendSuite, commitId, makePack } from './backendSuite.js';
import { motoAvailable, startS3Server, type S3TestServer } from './s3Server.js';

let root: string;
let n = 0;

beforeAll(async () => {
  root = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-transports-'));
});
afterAll(async () => {
  await fs.rm(root, { recursive: true, force: true });
});

async function plantFile(file: string, bytes: Uint8Array) {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, bytes);
}

/** Removes a folder store's gc.lock and shared locks, as one who judged them stale would. */
async function breakLockFiles(storeDir: string) {
  await fs.rm(path.join(storeDir, 'locks', 'gc.lock'), { force: true });
  const shared = path.join(storeDir, 'locks', 'shared');
  for (const f of await fs.readdir(shared).catch(() => [])) await fs.rm(path.join(shared, f), { force: true });
}

/** The pid of a process of this host that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

backendSuite('directory', async () => {
  const dir = path.join(root, `dir-${++n}`);
  return {
    open: (o = {}) => openBackend(dir, { directory: { lockWaitMs: o.lockWaitMs } }),
    plant: (key, bytes) => plantFile(path.join(dir, ...key.split('/')), bytes),
    breakLocks: () => breakLockFiles(dir),
    abandonSharedLock: async () => {
      const pid = await deadPid();
      await plantFile(path.join(dir, 'locks', 'shared', `${pid}-abandoned.lock`), Buffer.from(JSON.stringify({ pid, host: os.hostname(), time: Date.now(), purpose: 'commit' })));
    },
    lapseMs: 0,
  };
});

describe('directory transport specifics', () => {
  it('uses <dir>/.ckpt when the folder is a repository, and takes file:// URLs', async () => {
    const dir = path.join(root, `repo-${++n}`);
    await fs.mkdir(path.join(dir, '.ckpt'), { recursive: true });
    const t = await openBackend(pathToFileURL(dir).href);
    expect(t).toBeInstanceOf(RetryingBackend);
    expect((t as RetryingBackend).inner).toBeInstanceOf(LocalBackend);
    const p = makePack();
    await t.put(p.key, { bytes: p.bytes });
    await t.casRef('refs/heads/main', null, commitId());
    expect((await fs.stat(path.join(dir, '.ckpt', ...p.key.split('/')))).size).toBe(p.bytes.byteLength);
    expect(await fs.readdir(path.join(dir, '.ckpt', 'refs', 'heads'))).toEqual(['main']);
    // the ref lock (locks/refs%heads%main.lock, a local commit's) is released and tmp/ holds nothing after the writes
    expect((await fs.readdir(path.join(dir, '.ckpt', 'locks'))).filter((n) => n.endsWith('.lock'))).toEqual([]);
    expect(await fs.readdir(path.join(dir, '.ckpt', 'tmp'))).toEqual([]);
  });

  it('a pipe or a folder where a store file should be is E_CORRUPT or absent, never a read that hangs', async () => {
    const dir = path.join(root, `fifo-${++n}`);
    const t = await openBackend(dir);
    const p = makePack();
    for (const key of [p.key, 'refs/heads/main', 'config', 'logs/refs/heads/main']) {
      await fs.mkdir(path.dirname(path.join(dir, key)), { recursive: true });
      expect(spawnSync('mkfifo', [path.join(dir, key)]).status).toBe(0);
    }
    await expect(t.get(p.key)).rejects.toMatchObject({ code: 'E_CORRUPT' });
    await expect(t.get(p.key, { offset: 0, length: 4 })).rejects.toMatchObject({ code: 'E_CORRUPT' });
    await expect(t.openRanges(p.key)).rejects.toMatchObject({ code: 'E_CORRUPT' });
    await expect(t.getToFile(p.key, path.join(root, `fifo-out-${n}`))).rejects.toMatchObject({ code: 'E_CORRUPT' });
    await expect(t.readRef('refs/heads/main')).rejects.toMatchObject({ code: 'E_CORRUPT' });
    await expect(t.readFile('config')).rejects.toMatchObject({ code: 'E_CORRUPT' });
    await expect(t.readFile('logs/refs/heads/main')).rejects.toMatchObject({ code: 'E_CORRUPT' });
    expect(await t.list('')).toEqual([]);
    // a folder of refs is no ref
    await t.casRef('refs/heads/team/a', null, commitId());
    expect(await t.readRef('refs/heads/team')).toBeNull();
  });

  it('resolves relative paths against cwd and refuses unknown schemes', async () => {
    const t = await openBackend(`dir-rel-${++n}`, { cwd: root });
    expect(t.url).toBe(pathToFileURL(path.join(root, `dir-rel-${n}`)).href);
    await expect(openBackend('ftp://example/x')).rejects.toMatchObject({ code: 'E_USAGE' });
    expect(((await openBackend('http://127.0.0.1:1/repo')) as RetryingBackend).inner).toBeInstanceOf(HttpBackend);
    expect(await openBackend('s3://some-bucket/a/b', { s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } })).toMatchObject({
      url: 's3://some-bucket/a/b/',
    });
  });
});

describe('over HTTP', () => {
  let server: StoreServer;
  const writeToken = 'write-token-for-tests';
  const adminToken = 'admin-token-for-tests';
  const serveRoot = () => path.join(root, 'served');

  const leaseMs = 2000;

  beforeAll(async () => {
    server = await startStoreServer({
      root: serveRoot(),
      readToken: 'read-token-for-tests',
      writeToken,
      adminToken,
      // the suite moves refs to random ids and deletes objects: an admin client on a lax server
      verifyRefTargets: false,
      // short leases, so an abandoned one lapses within a test
      leaseMs,
      log: () => undefined,
    });
  });
  afterAll(async () => {
    await server.close();
  });

  backendSuite('http', async () => {
    const repo = `repo-${++n}`;
    return {
      open: async (o = {}) => new HttpBackend(`${server.url}/${repo}`, { token: adminToken, lockWaitMs: o.lockWaitMs }),
      plant: (key, bytes) => plantFile(path.join(serveRoot(), repo, ...key.split('/')), bytes),
      breakLocks: () => breakLockFiles(path.join(serveRoot(), repo)),
      // a lease taken and never renewed: the client vanished
      abandonSharedLock: async () => {
        const res = await fetch(`${server.url}/${repo}/?lock=abandoned`, { method: 'POST', headers: { Authorization: `Bearer ${writeToken}` } });
        expect(res.status).toBe(201);
      },
      lapseMs: leaseMs,
    };
  });

  it('an upload over the server limit fails with E_REMOTE naming the limit', async () => {
    const small = await startStoreServer({ root: path.join(root, 'small'), maxBodyBytes: 1024 * 1024, log: () => undefined });
    const t = new RetryingBackend(new HttpBackend(`${small.url}/r`), { delayMs: 1 });
    try {
      const p = makePack(8 * 1024 * 1024);
      const file = path.join(root, 'big.pack');
      await fs.writeFile(file, p.bytes);
      await expect(t.put(p.key, { file })).rejects.toMatchObject({ code: 'E_REMOTE', data: { status: 413 } });
      expect(await t.list('')).toEqual([]);
    } finally {
      await t.close();
      await small.close();
    }
  });

  it('reports a missing or wrong token as E_AUTH', async () => {
    const p = makePack();
    const anonymous = new HttpBackend(`${server.url}/auth`);
    const reader = new HttpBackend(`${server.url}/auth`, { token: 'read-token-for-tests' });
    try {
      await expect(anonymous.list('objects/')).rejects.toMatchObject({ code: 'E_AUTH' });
      await expect(reader.put(p.key, { bytes: p.bytes })).rejects.toMatchObject({ code: 'E_AUTH' });
      await expect(reader.casRef('refs/heads/main', null, commitId())).rejects.toMatchObject({ code: 'E_AUTH' });
      expect(await reader.list('objects/')).toEqual([]);
    } finally {
      await anonymous.close();
      await reader.close();
    }
  });
});

describe('HTTP: what each token may do', () => {
  let server: StoreServer;
  const tokens = { readToken: 'r-tok', writeToken: 'w-tok', adminToken: 'a-tok' };

  beforeAll(async () => {
    server = await startStoreServer({ root: path.join(root, 'tokens'), ...tokens, verifyRefTargets: false, log: () => undefined });
  });
  afterAll(async () => {
    await server.close();
  });

  const client = (repo: string, token: string) => new HttpBackend(`${server.url}/${repo}`, { token, lockWaitMs: 200 });
  const raw = (repo: string, method: string, key: string, token: string, init: { headers?: Record<string, string>; body?: Uint8Array } = {}) =>
    fetch(`${server.url}/${repo}/${key}`, { method, headers: { Authorization: `Bearer ${token}`, ...init.headers }, body: init.body });

  it('refs are created, moved and deleted with the write token; marks and the exclusive lock need the admin token', async () => {
    const [reader, writer, admin] = [client('t1', tokens.readToken), client('t1', tokens.writeToken), client('t1', tokens.adminToken)];
    try {
      const [a, b] = [commitId(), commitId()];
      await writer.casRef('refs/heads/main', null, a, { time: 1, reason: 'create' });
      await writer.casRef('refs/heads/main', a, b, { time: 2, reason: 'move' });
      await expect(reader.casRef('refs/heads/main', b, null)).rejects.toMatchObject({ code: 'E_AUTH' });
      // deleting a ref takes what moving it takes
      await writer.casRef('refs/heads/main', b, null, { time: 3, reason: 'delete' });
      expect(parseReflog(Buffer.from((await reader.readFile('logs/refs/heads/main'))!).toString()).map((l) => l.reason)).toEqual(['create', 'move', 'delete']);
      await writer.writeFile('config', Buffer.from('{}\n'));
      await writer.writeFile('HEAD', Buffer.from('ref: refs/heads/main\n'));
      await expect(reader.writeFile('HEAD', Buffer.from('x'))).rejects.toMatchObject({ code: 'E_AUTH' });
      // a mark tells gc to drop a commit's chunks: as destructive as a delete
      const mark = markKey(a);
      await expect(writer.writeFile(mark, Buffer.from('{}'))).rejects.toMatchObject({ code: 'E_AUTH', message: expect.stringContaining('admin token') });
      await admin.writeFile(mark, Buffer.from('{}'));
      await expect(writer.delete(mark)).rejects.toMatchObject({ code: 'E_AUTH' });
      expect(await reader.readFile(mark)).toBeDefined();
      await admin.delete(mark);
      expect(await reader.readFile(mark)).toBeUndefined();
      // gc's lock is the admin's; a pusher's lease is the writer's
      await expect(writer.lockExclusive('gc')).rejects.toMatchObject({ code: 'E_AUTH' });
      await expect(reader.lockShared('push')).rejects.toMatchObject({ code: 'E_AUTH' });
      const s = await writer.lockShared('push');
      await s.release();
      const x = await admin.lockExclusive('gc');
      x.check();
      await x.release();
    } finally {
      await Promise.all([reader, writer, admin].map((c) => c.close()));
    }
  });

  it('refuses writes to reflogs, deletes of config and HEAD, oversized store files and malformed reflog entries', async () => {
    const id = commitId();
    expect((await raw('t2', 'PUT', 'logs/refs/heads/main', tokens.adminToken, { body: Buffer.from('x') })).status).toBe(405);
    expect((await raw('t2', 'DELETE', 'config', tokens.adminToken)).status).toBe(405);
    expect((await raw('t2', 'DELETE', 'HEAD', tokens.adminToken)).status).toBe(405);
    expect((await raw('t2', 'PUT', 'config', tokens.writeToken, { body: Buffer.alloc(1024 * 1024 + 1) })).status).toBe(413);
    for (const bad of ['x', '12', '-1 reason', '1 two words', '1 %E0%A4%A', `${'9'.repeat(20)} r`]) {
      const a = await raw('t2', 'PUT', 'refs/heads/main', tokens.writeToken, { headers: { 'If-None-Match': '*', 'ckpt-reflog': bad }, body: Buffer.from(`${id}\n`) });
      expect(a.status, bad).toBe(400);
    }
    const reader = client('t2', tokens.readToken);
    expect(await reader.readRef('refs/heads/main')).toBeNull();
    expect(await reader.list('')).toEqual([]);
    await reader.close();
  });
});

describe('HTTP transport against a lying server', () => {
  it('a listing keeps only store keys under the prefix asked for, and refuses entries that are not {key, size}', async () => {
    const p = makePack();
    let answer: unknown = [];
    const srv = http.createServer((_req, res) => void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(answer)));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const t = new HttpBackend(`http://127.0.0.1:${(srv.address() as AddressInfo).port}/repo`);
    try {
      answer = [
        { key: p.key, size: 10 },
        { key: 'refs/heads/main', size: 65 },
        { key: '../../etc/passwd', size: 1 },
        { key: `objects/packs/../../${p.key}`, size: 1 },
        { key: 'objects/packs/zz.pack', size: 1 },
        { key: 'config.local', size: 1 },
        { key: 'tmp/x', size: 1 },
      ];
      expect(await t.list('objects/packs/')).toEqual([{ key: p.key, size: 10 }]);
      expect(await t.list('')).toEqual([
        { key: p.key, size: 10 },
        { key: 'refs/heads/main', size: 65 },
      ]);
      for (const bad of [[{ key: p.key, size: -1 }], [{ key: p.key, size: 1.5 }], [{ key: p.key }], [{ key: 7, size: 1 }], { key: p.key, size: 1 }, 'not a list']) {
        answer = bad;
        await expect(t.list('objects/'), JSON.stringify(bad)).rejects.toMatchObject({ code: 'E_REMOTE' });
      }
    } finally {
      await t.close();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describe('HTTP transport against a flaky server', () => {
  /** A server whose handler sees each request with the number of times its path was asked for. */
  async function flaky(handler: (req: http.IncomingMessage, res: http.ServerResponse, seen: number) => void) {
    const seen = new Map<string, number>();
    const srv = http.createServer((req, res) => {
      const k = `${req.method} ${req.url}`;
      seen.set(k, (seen.get(k) ?? 0) + 1);
      handler(req, res, seen.get(k)!);
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}/repo`,
      seen,
      close: () => new Promise<void>((r) => srv.close(() => r())),
    };
  }

  it('retries reads after a 5xx or a dropped connection', async () => {
    const s = await flaky((req, res, seen) => {
      if (seen === 1) return void res.writeHead(503).end('busy');
      if (seen === 2) return void req.socket.destroy();
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('[]');
    });
    const t = new RetryingBackend(new HttpBackend(s.url), { delayMs: 1 });
    try {
      expect(await t.list('objects/')).toEqual([]);
      expect(s.seen.get('GET /repo/?list=objects%2F')).toBe(3);
    } finally {
      await t.close();
      await s.close();
    }
  });

  it('gives up after its retries with E_REMOTE', async () => {
    const s = await flaky((_req, res) => void res.writeHead(500).end('broken'));
    const t = new RetryingBackend(new HttpBackend(s.url), { delayMs: 1, retries: 2 });
    try {
      await expect(t.list('objects/')).rejects.toMatchObject({ code: 'E_REMOTE', data: { status: 500 } });
      expect(s.seen.get('GET /repo/?list=objects%2F')).toBe(3);
    } finally {
      await t.close();
      await s.close();
    }
  });

  it('counts a ref update as done when a retry finds its own earlier attempt landed', async () => {
    const next = commitId();
    const s = await flaky((req, res, seen) => {
      req.resume();
      // the first attempt is applied but its answer is lost; the retry then fails its precondition
      if (seen === 1) return void req.on('end', () => req.socket.destroy());
      req.on('end', () => {
        res.writeHead(412, { 'Content-Type': 'application/json' }).end(JSON.stringify({ actual: next }));
      });
    });
    const t = new RetryingBackend(new HttpBackend(s.url), { delayMs: 1 });
    try {
      await t.casRef('refs/heads/main', null, next);
      // without a lost answer, the same 412 is a conflict
      await expect(t.casRef('refs/heads/main', null, next)).rejects.toMatchObject({ code: 'E_REF_CONFLICT' });
    } finally {
      await t.close();
      await s.close();
    }
  });
});

describe('over S3', () => {
  let s3: S3TestServer;

  beforeAll(async () => {
    s3 = await startS3Server();
  });
  afterAll(async () => {
    await s3?.stop();
  });

  const casSkipReason = motoAvailable()
    ? undefined
    : 'moto is not installed and the fallback, s3rver, ignores conditional writes';
  // S3 gives Last-Modified to the second: a lease of 4 s, refreshed every 1.3 s, is live throughout
  const leaseMs = 4000;
  backendSuite(
    's3',
    async () => {
      const prefix = `t${++n}/remote`;
      return {
        open: async (o = {}) =>
          new S3Backend(`s3://${s3.bucket}/${prefix}`, {
            endpoint: s3.endpoint,
            region: s3.region,
            credentials: s3.credentials,
            partSize: 5 * 1024 * 1024,
            multipartThreshold: 5 * 1024 * 1024,
            locks: { leaseMs, waitMs: o.lockWaitMs, pollMs: 100 },
          }),
        plant: async (key, bytes) => {
          await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${key}`, Body: bytes }));
        },
        breakLocks: async () => {
          const page = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${prefix}/locks/` }));
          for (const o of page.Contents ?? []) await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: o.Key! }));
        },
        // a lock object its holder stopped refreshing
        abandonSharedLock: async () => {
          const body = JSON.stringify({ host: 'elsewhere', pid: 1, time: Date.now(), purpose: 'commit', id: 'abandoned' });
          await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/locks/shared/abandoned.lock`, Body: body }));
        },
        lapseMs: leaseMs + 1000,
      };
    },
    { casSkipReason, flatRefsReason: 'S3 keys are flat: refs/heads/fd and refs/heads/fd/sub are two unrelated keys' },
  );
});
