/**
 * `ckpt serve` under attack: symlinks planted in a served store, bodies that are huge, slow or
 * never end, floods of uploads, a pusher deleting history, refs that clash as file and folder, a
 * ref to a commit the server lacks. Nothing is served or written outside the root, memory
 * stays bounded, slow clients are cut within the timeouts, and each refusal is a clear status.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { objectId } from '../../src/core/objectId.js';
import { HttpBackend } from '../../src/backend/httpBackend.js';
import { push } from '../../src/sync/push.js';
import { startStoreServer, type StoreServer } from '../../src/serve/storeServer.js';
import { acquireExclusive } from '../../src/backend/storeLocks.js';
import { metaKey, packKey } from '../../src/backend/objectKeys.js';
import { ckpt, start } from '../e2e/helpers.js';
import { filesBelow, makeSource, watchPeakRss } from './craftedRemote.js';

const WRITE = 'w-token';
const ADMIN = 'a-token';
const READ = 'r-token';

let base: string;
let root: string;
let outside: string;
let server: StoreServer;

interface Answer {
  status: number;
  body: string;
}

function send(port: number, method: string, p: string, opts: { token?: string; headers?: Record<string, string | number>; body?: Uint8Array } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...opts.headers };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.body && headers['Content-Length'] === undefined) headers['Content-Length'] = opts.body.byteLength;
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

beforeAll(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-serve-attack-'));
  root = path.join(base, 'root');
  outside = path.join(base, 'outside');
  await fs.mkdir(outside, { recursive: true });
  await fs.writeFile(path.join(outside, 'secret'), 'root:x:0:0:secret\n');
  server = await startStoreServer({ root, readToken: READ, writeToken: WRITE, adminToken: ADMIN, log: () => undefined });
});
afterAll(async () => {
  await server.close();
  // 0 bytes written outside the root by any test here
  expect(await filesBelow(outside)).toEqual(['secret']);
  await fs.rm(base, { recursive: true, force: true });
});

const pack = (size = 4096) => {
  const bytes = randomBytes(size);
  return { key: packKey(objectId('pack', bytes)), bytes };
};

describe('paths: no symlink under the root is followed', () => {
  it('a metadata folder, a pack file, objects/ and tmp/ that are symlinks out of the root: 400, nothing served or written', async () => {
    const repo = path.join(root, 'sym');
    await fs.mkdir(path.join(repo, 'objects', 'meta'), { recursive: true });
    await fs.mkdir(path.join(repo, 'objects', 'packs'), { recursive: true });
    await fs.symlink(outside, path.join(repo, 'objects', 'meta', 'ab'));
    const fakeMeta = `objects/meta/ab/${'c'.repeat(62)}`;
    await fs.symlink(path.join(outside, 'secret'), path.join(outside, 'c'.repeat(62))).catch(() => undefined);
    const p = pack();
    await fs.symlink(path.join(outside, 'secret'), path.join(repo, ...p.key.split('/')));
    for (const key of [fakeMeta, p.key]) {
      for (const method of ['GET', 'HEAD']) {
        const a = await send(server.port, method, `/sym/${key}`, { token: READ });
        expect(a.status, `${method} ${key}`).toBe(400);
        expect(a.body).not.toContain('secret');
      }
    }
    // objects/ itself a symlink out of the root: no listing, no upload
    const repo2 = path.join(root, 'sym2');
    await fs.mkdir(repo2, { recursive: true });
    await fs.symlink(outside, path.join(repo2, 'objects'));
    expect((await send(server.port, 'GET', '/sym2/?list=objects/', { token: READ })).status).toBe(400);
    expect((await send(server.port, 'PUT', `/sym2/${p.key}`, { token: WRITE, body: p.bytes })).status).toBe(400);
    // tmp/ a symlink: the upload would stream there first
    const repo3 = path.join(root, 'sym3');
    await fs.mkdir(repo3, { recursive: true });
    await fs.symlink(outside, path.join(repo3, 'tmp'));
    expect((await send(server.port, 'PUT', `/sym3/${p.key}`, { token: WRITE, body: p.bytes })).status).toBe(400);
    expect(await filesBelow(outside)).toEqual(['c'.repeat(62), 'secret'].sort());
    await fs.rm(path.join(outside, 'c'.repeat(62)));
  });
});

describe('tokens: a pusher cannot destroy history', () => {
  it("a write token's DELETE is refused (403); the admin token's is not", async () => {
    const p = pack();
    expect((await send(server.port, 'PUT', `/del/${p.key}`, { token: WRITE, body: p.bytes })).status).toBe(201);
    const del = await send(server.port, 'DELETE', `/del/${p.key}`, { token: WRITE });
    expect(del.status).toBe(403);
    expect(del.body).toContain('admin token');
    expect((await send(server.port, 'GET', `/del/${p.key}`, { token: READ })).status).toBe(200);
    expect((await send(server.port, 'DELETE', `/del/${p.key}`, { token: ADMIN })).status).toBe(204);
    expect((await send(server.port, 'GET', `/del/${p.key}`, { token: READ })).status).toBe(404);
  });

  it('without --admin-token a server with tokens deletes nothing', async () => {
    const s = await startStoreServer({ root: path.join(base, 'noadmin'), writeToken: WRITE, log: () => undefined });
    try {
      const p = pack();
      await send(s.port, 'PUT', `/r/${p.key}`, { token: WRITE, body: p.bytes });
      const del = await send(s.port, 'DELETE', `/r/${p.key}`, { token: WRITE });
      expect(del.status).toBe(403);
      expect(del.body).toContain('--admin-token');
    } finally {
      await s.close();
    }
  });
});

describe('refs', () => {
  it('refs that clash as file and folder get 409 with a message, either order', async () => {
    const s = await startStoreServer({ root: path.join(base, 'clash'), verifyRefTargets: false, log: () => undefined });
    try {
      const id = objectId('commit', randomBytes(8));
      const put = (repo: string, ref: string) => send(s.port, 'PUT', `/${repo}/${ref}`, { headers: { 'If-None-Match': '*' }, body: Buffer.from(`${id}\n`) });
      expect((await put('a', 'refs/heads/fd')).status).toBe(200);
      const second = await put('a', 'refs/heads/fd/sub');
      expect(second.status).toBe(409);
      expect(second.body).toContain('refs/heads/fd');
      expect((await put('b', 'refs/heads/fd/sub')).status).toBe(200);
      const third = await put('b', 'refs/heads/fd');
      expect(third.status).toBe(409);
      expect(third.body).toContain('refs/heads/fd');
      // the client names it a ref conflict
      const t = new HttpBackend(`${s.url}/a`);
      await expect(t.casRef('refs/heads/fd/other', null, id)).rejects.toMatchObject({ code: 'E_REF_CONFLICT' });
      await t.close();
    } finally {
      await s.close();
    }
  });

  it('a ref may only name a commit whose every object the server holds (424 otherwise)', async () => {
    const src = await makeSource(path.join(base, `src-${Date.now()}`));
    const t = new HttpBackend(`${server.url}/complete`, { token: WRITE });
    await push(src.repo, t, { refs: ['main'] });
    const head = (await src.repo.headCommit())!;
    expect(await t.readRef('refs/heads/main')).toBe(head);
    const stranger = objectId('commit', randomBytes(8));
    const a = await send(server.port, 'PUT', '/complete/refs/heads/x', { token: WRITE, headers: { 'If-None-Match': '*' }, body: Buffer.from(`${stranger}\n`) });
    expect(a.status).toBe(424);
    // the pack behind the commit goes missing: the same commit can no longer be named
    const packs = path.join(root, 'complete', 'objects', 'packs');
    for (const f of await fs.readdir(packs)) await fs.rm(path.join(packs, f));
    const b = await send(server.port, 'PUT', '/complete/refs/heads/y', { token: WRITE, headers: { 'If-None-Match': '*' }, body: Buffer.from(`${head}\n`) });
    expect(b.status).toBe(424);
    expect(b.body).toContain('chunk');
    expect(await t.readRef('refs/heads/y')).toBeNull();
    // the objects themselves are still there: only the ref was refused
    expect(await t.stat(metaKey(head))).toBeDefined();
    await t.close();
  });
});

describe('bodies', () => {
  it('metadata over its limit and packs over --max-body are refused from Content-Length, before a byte is read', async () => {
    const s = await startStoreServer({ root: path.join(base, 'limits'), maxBodyBytes: 1 << 20, maxSmallBodyBytes: 64 * 1024, log: () => undefined });
    try {
      const meta = `objects/meta/ab/${'c'.repeat(62)}`;
      for (const [key, size] of [
        [meta, 64 * 1024 + 1],
        [pack().key, (1 << 20) + 1],
      ] as const) {
        // a socket that declares the size and sends nothing: the answer must come anyway
        const status = await new Promise<number>((resolve, reject) => {
          const sock = net.connect(s.port, '127.0.0.1', () => sock.write(`PUT /r/${key} HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`));
          let buf = '';
          sock.on('data', (d) => {
            buf += d.toString();
            const m = /^HTTP\/1.1 (\d+)/.exec(buf);
            if (m) {
              resolve(Number(m[1]));
              sock.destroy();
            }
          });
          sock.on('error', reject);
        });
        expect(status, key).toBe(413);
      }
      expect(await filesBelow(path.join(base, 'limits'))).toEqual([]);
    } finally {
      await s.close();
    }
  });

  it('slow headers, a dripping body and an idle connection are cut within the timeouts', async () => {
    const s = await startStoreServer({ root: path.join(base, 'slow'), headersTimeoutMs: 500, idleTimeoutMs: 500, requestTimeoutMs: 4000, log: () => undefined });
    try {
      const p = pack(1 << 20);
      const closedAfter = (feed: (sock: net.Socket) => void) =>
        new Promise<number>((resolve) => {
          const t0 = Date.now();
          const sock = net.connect(s.port, '127.0.0.1', () => feed(sock));
          const giveUp = setTimeout(() => {
            resolve(Infinity);
            sock.destroy();
          }, 5000);
          sock.on('error', () => undefined);
          sock.on('close', () => {
            clearTimeout(giveUp);
            resolve(Date.now() - t0);
          });
        });
      const drip = (sock: net.Socket, text: string | Buffer, everyMs: number) => {
        const bytes = Buffer.from(text);
        let i = 0;
        const timer = setInterval(() => {
          if (sock.destroyed || i >= bytes.length) return clearInterval(timer);
          sock.write(bytes.subarray(i, ++i));
        }, everyMs);
        sock.on('close', () => clearInterval(timer));
      };
      const head = `PUT /r/${p.key} HTTP/1.1\r\nHost: x\r\nContent-Length: ${p.bytes.length}\r\n\r\n`;
      const [slowHeaders, slowBody, idle] = await Promise.all([
        closedAfter((sock) => drip(sock, head + 'x'.repeat(100), 50)),
        closedAfter((sock) => {
          sock.write(head);
          drip(sock, p.bytes, 20);
        }),
        closedAfter(() => undefined),
      ]);
      for (const [what, ms] of [
        ['slow headers', slowHeaders],
        ['dripping body', slowBody],
        ['idle', idle],
      ] as const) {
        expect(ms, what).toBeLessThan(2500);
      }
      expect(await filesBelow(path.join(base, 'slow'))).not.toContain(p.key);
    } finally {
      await s.close();
    }
  });

  it('uploads beyond the cap are told to retry (503)', async () => {
    const s = await startStoreServer({ root: path.join(base, 'cap'), maxUploads: 2, log: () => undefined });
    try {
      const big = pack(4 << 20);
      // four uploads that each send a first part and then hold: two are taken, two refused
      const socks: net.Socket[] = [];
      const statuses = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          new Promise<number>((resolve) => {
            const sock = net.connect(s.port, '127.0.0.1', () => {
              sock.write(`PUT /r/${big.key} HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.bytes.length}\r\n\r\n`);
              sock.write(big.bytes.subarray(0, 1 << 16));
            });
            socks.push(sock);
            sock.on('error', () => undefined);
            sock.on('data', (d) => resolve(Number(/^HTTP\/1.1 (\d+)/.exec(d.toString())?.[1] ?? 0)));
            setTimeout(() => resolve(i < 0 ? 0 : -1), 1500);
          }),
        ),
      );
      for (const sock of socks) sock.destroy();
      expect(statuses.filter((x) => x === 503)).toHaveLength(2);
      expect(statuses.filter((x) => x === -1)).toHaveLength(2); // still streaming, not refused
    } finally {
      await s.close();
    }
  });
});

describe('leases: a push holds the store lock through the server', () => {
  it('gc on the served folder waits for a lease; a read token may not take one', async () => {
    expect((await send(server.port, 'POST', '/leased/?lock=push', { token: READ })).status).toBe(403);
    const a = await send(server.port, 'POST', '/leased/?lock=push', { token: WRITE });
    expect(a.status).toBe(201);
    const { lease } = JSON.parse(a.body) as { lease: string };
    const locks = path.join(root, 'leased', 'locks');
    await expect(acquireExclusive(locks, { timeoutMs: 300 })).rejects.toMatchObject({ code: 'E_LOCKED' });
    expect((await send(server.port, 'POST', `/leased/?renew=${lease}`, { token: WRITE })).status).toBe(200);
    expect((await send(server.port, 'DELETE', `/leased/?lease=${lease}`, { token: WRITE })).status).toBe(204);
    const gc = await acquireExclusive(locks, { timeoutMs: 1000 });
    // while gc holds the store a lease is refused at once, not after a hanging request
    const refused = await send(server.port, 'POST', '/leased/?lock=push', { token: WRITE });
    expect(refused.status).toBe(503);
    await gc.release();
    expect((await send(server.port, 'POST', `/leased/?renew=${lease}`, { token: WRITE })).status).toBe(404);
  });
});

describe('leases expire', () => {
  it('a lease not renewed in time is released: gc may then run, and the renewal is refused', async () => {
    const s = await startStoreServer({ root: path.join(base, 'expiry'), leaseMs: 200, log: () => undefined });
    try {
      const a = await send(s.port, 'POST', '/r/?lock=push');
      expect(a.status).toBe(201);
      const { lease } = JSON.parse(a.body) as { lease: string };
      await new Promise((r) => setTimeout(r, 500));
      const gc = await acquireExclusive(path.join(base, 'expiry', 'r', 'locks'), { timeoutMs: 1000 });
      await gc.release();
      expect((await send(s.port, 'POST', `/r/?renew=${lease}`)).status).toBe(404);
    } finally {
      await s.close();
    }
  });
});

describe('the `ckpt serve` process', () => {
  it('refuses --port 99999 and a --root that is a file with a usage error (exit 2)', async () => {
    const file = path.join(base, 'a-file');
    await fs.writeFile(file, 'x');
    for (const args of [
      ['serve', '--port', '99999'],
      ['serve', '--port', '0', '--root', file],
    ]) {
      const r = await ckpt(base, ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  /**
   * Ten concurrent uploads of 1 GiB each, generated on the fly over loopback. Below the size
   * limit each is refused from its Content-Length; above it they stream to disk (set
   * CKPT_SERVE_ATTACK_MB to stream the full 1024 MiB each; the default streams 64 MiB each to
   * keep the suite short). Either way the server's peak RSS stays under 300 MiB.
   */
  it('stays under 300 MiB with 10 concurrent 1 GiB uploads, refused or streamed', async () => {
    const streamMb = Number(process.env.CKPT_SERVE_ATTACK_MB ?? 64);
    for (const [maxBody, perUpload, kind] of [
      [512 << 20, 1 << 30, 'pack'],
      [2 ** 31, streamMb << 20, 'pack'],
      // metadata keys have their own, small limit, whatever --max-body says
      [2 ** 31, 256 << 20, 'meta'],
    ] as const) {
      const dir = await fs.mkdtemp(path.join(base, 'rss-'));
      const run = start(dir, ['serve', '--root', dir, '--port', '0', '--write-token', WRITE, '--max-body', String(maxBody), '--max-uploads', '10']);
      const url = await new Promise<string>((resolve, reject) => {
        let buf = '';
        run.child.stdout!.on('data', (b: Buffer) => {
          buf += b.toString();
          const m = /at (http:\/\/127\.0\.0\.1:(\d+))\//.exec(buf);
          if (m) resolve(m[2]);
        });
        run.done.then(() => reject(new Error('serve exited')), reject);
      });
      const rss = watchPeakRss(run.child.pid!);
      const block = randomBytes(1 << 20);
      const t0 = Date.now();
      const statuses = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          new Promise<number>((resolve) => {
            const id = objectId('pack', Buffer.from(`upload ${i}`));
            const key = kind === 'pack' ? packKey(id) : metaKey(id);
            const req = http.request(
              { host: '127.0.0.1', port: Number(url), method: 'PUT', path: `/r/${key}`, agent: false, headers: { Authorization: `Bearer ${WRITE}`, 'Content-Length': perUpload } },
              (res) => {
                res.resume();
                resolve(res.statusCode ?? 0);
              },
            );
            req.on('error', () => resolve(-1));
            let sent = 0;
            const pump = () => {
              while (sent < perUpload) {
                sent += block.length;
                if (!req.write(block)) return void req.once('drain', pump);
              }
              req.end();
            };
            pump();
          }),
        ),
      );
      const ms = Date.now() - t0;
      const peak = rss.stop();
      run.child.kill('SIGTERM');
      await run.done;
      if (process.env.CKPT_TEST_REPORT) {
        process.stderr.write(`serve: max-body ${maxBody}, 10 x ${perUpload} B to ${kind} keys: statuses ${statuses.join(',')}, peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB, ${ms} ms\n`);
      }
      if (perUpload > maxBody || kind === 'meta') {
        // refused from Content-Length (413); a client still writing may see the closed socket first
        expect(statuses.every((x) => x === 413 || x === -1)).toBe(true);
        expect(statuses).toContain(413);
      } else {
        // streamed whole to tmp/, then refused as not matching its key (422)
        expect(statuses).toEqual(Array(10).fill(422));
      }
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThan(300 * 1024 * 1024);
      // nothing kept: tmp/ is empty again
      expect((await filesBelow(dir)).filter((f) => !f.startsWith('r/locks'))).toEqual([]);
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
