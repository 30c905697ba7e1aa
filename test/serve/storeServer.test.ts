/**
 * The store server over real sockets, with raw requests (node:http sends paths as given, so
 * `..` and percent-encoded separators reach the server unnormalised).
 */
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStoreServer, type RequestLogEntry, type StoreServer } from '../../src/serve/storeServer.js';
import { commitId, makeIndex, makeMeta, makePack } from '../backend/backendSuite.js';

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | number>;
  /** One buffer is sent with a Content-Length; several are sent chunked, one write each. */
  body?: Uint8Array | Uint8Array[];
  token?: string;
}

function raw(port: number, r: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...r.headers };
    if (r.token) headers.Authorization = `Bearer ${r.token}`;
    if (r.body instanceof Uint8Array && headers['Content-Length'] === undefined) headers['Content-Length'] = r.body.byteLength;
    const req = http.request({ host: '127.0.0.1', port, method: r.method ?? 'GET', path: r.path, headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (Array.isArray(r.body)) for (const part of r.body) req.write(part);
    else if (r.body) req.write(r.body);
    req.end();
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  await walk(dir);
  return out.sort();
}

const READ = 'reader-token';
const WRITE = 'writer-token';

let base: string;
let root: string;
let outside: string;
let server: StoreServer;
const logged: RequestLogEntry[] = [];

beforeAll(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-serve-'));
  root = path.join(base, 'root');
  outside = path.join(base, 'outside');
  await fs.mkdir(outside, { recursive: true });
  server = await startStoreServer({
    root,
    readToken: READ,
    writeToken: WRITE,
    // these tests move refs to random commit ids
    verifyRefTargets: false,
    log: (_line, entry) => logged.push(entry),
  });
});

afterAll(async () => {
  await server.close();
  await fs.rm(base, { recursive: true, force: true });
});

describe('store server: auth', () => {
  it('answers 401 without a token or with a wrong one, on reads and writes', async () => {
    const p = makePack();
    for (const token of [undefined, 'nope']) {
      const list = await raw(server.port, { path: '/auth/?list=objects/', token });
      expect(list.status).toBe(401);
      expect(list.headers['www-authenticate']).toMatch(/^Bearer/);
      expect((await raw(server.port, { method: 'PUT', path: `/auth/${p.key}`, body: p.bytes, token })).status).toBe(401);
    }
    expect(await filesUnder(root)).toEqual([]);
  });

  it('lets the read token read but not write (403); the write token does both', async () => {
    const p = makePack();
    expect((await raw(server.port, { path: '/auth/?list=objects/', token: READ })).status).toBe(200);
    expect((await raw(server.port, { method: 'PUT', path: `/auth/${p.key}`, body: p.bytes, token: READ })).status).toBe(403);
    const ref = await raw(server.port, {
      method: 'PUT',
      path: '/auth/refs/heads/main',
      body: Buffer.from(`${commitId()}\n`),
      headers: { 'If-None-Match': '*' },
      token: READ,
    });
    expect(ref.status).toBe(403);
    expect((await raw(server.port, { method: 'DELETE', path: `/auth/${p.key}`, token: READ })).status).toBe(403);
    // nothing was created, not even the repository folder
    expect(await filesUnder(root)).toEqual([]);
    expect((await raw(server.port, { method: 'PUT', path: `/auth/${p.key}`, body: p.bytes, token: WRITE })).status).toBe(201);
    const got = await raw(server.port, { path: `/auth/${p.key}`, token: READ });
    expect(got.status).toBe(200);
    expect(got.body.equals(Buffer.from(p.bytes))).toBe(true);
    expect((await raw(server.port, { path: `/auth/${p.key}`, token: WRITE })).status).toBe(200);
  });
});

describe('store server: uploads', () => {
  it('stores a verified upload once; a repeat is 200 and rewrites nothing', async () => {
    const p = makePack(70_000);
    const put = () => raw(server.port, { method: 'PUT', path: `/up/${p.key}`, body: p.bytes, token: WRITE });
    expect((await put()).status).toBe(201);
    const file = path.join(root, 'up', ...p.key.split('/'));
    const before = await fs.stat(file);
    expect((await put()).status).toBe(200);
    expect((await fs.stat(file)).ino).toBe(before.ino);
    expect((await fs.readFile(file)).equals(Buffer.from(p.bytes))).toBe(true);
    const head = await raw(server.port, { method: 'HEAD', path: `/up/${p.key}`, token: READ });
    expect([head.status, head.headers['content-length']]).toEqual([200, '70000']);
  });

  it('refuses (422) bytes that do not match the key, and stores nothing', async () => {
    const p = makePack(50_000);
    const i = makeIndex();
    const m = makeMeta();
    const attempts: [string, Uint8Array | Uint8Array[]][] = [
      [p.key, makePack(50_000).bytes],
      // streamed in pieces without a Content-Length, as a client uploading a pack would
      [p.key, [p.bytes.subarray(0, 20_000), Buffer.from('tampered'), p.bytes.subarray(20_008)]],
      [i.key, makeIndex().bytes],
      [m.key, makeMeta().bytes],
      [m.key, p.bytes],
    ];
    for (const [key, body] of attempts) {
      const res = await raw(server.port, { method: 'PUT', path: `/bad/${key}`, body, token: WRITE });
      expect(res.status, key).toBe(422);
      expect(JSON.parse(res.body.toString())).toMatchObject({ code: 'E_CORRUPT' });
    }
    // only the (empty) tmp/ folder may have been made
    expect(await filesUnder(path.join(root, 'bad'))).toEqual([]);
    const list = await raw(server.port, { path: '/bad/?list=', token: READ });
    expect(JSON.parse(list.body.toString())).toEqual([]);
  });

  it('keeps a pack upload the client hung up on, out of sight in tmp/, and resumes it by Upload-Offset', async () => {
    const p = makePack(4 * 1024 * 1024);
    await new Promise<void>((resolve) => {
      const req = http.request({
        host: '127.0.0.1',
        port: server.port,
        method: 'PUT',
        path: `/hangup/${p.key}`,
        headers: { Authorization: `Bearer ${WRITE}`, 'Content-Length': p.bytes.byteLength },
        agent: false,
      });
      req.on('error', () => resolve());
      req.write(p.bytes.subarray(0, 1024 * 1024), () => setTimeout(() => req.destroy(), 50));
    });
    const name = `${p.key.split('/').pop()}.upload`;
    let kept = 0;
    const deadline = Date.now() + 5000;
    // until the server has seen the hang-up: the size kept no longer changes
    for (let last = -1; Date.now() < deadline; last = kept) {
      const head = await raw(server.port, { method: 'HEAD', path: `/hangup/${p.key}?partial`, token: READ });
      if (head.status === 200) kept = Number(head.headers['upload-offset']);
      if (kept > 0 && kept === last) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // nothing under the key, only the bytes that arrived
    expect(await filesUnder(path.join(root, 'hangup'))).toEqual([`tmp/${name}`]);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(1024 * 1024);
    expect((await raw(server.port, { method: 'HEAD', path: `/hangup/${p.key}`, token: READ })).status).toBe(404);

    // an offset beyond what was kept: 409; the rest from the right offset: stored, verified whole
    const rest = Buffer.from(p.bytes.subarray(kept));
    expect((await raw(server.port, { method: 'PUT', path: `/hangup/${p.key}`, body: Buffer.from(p.bytes.subarray(2 * 1024 * 1024)), token: WRITE, headers: { 'Upload-Offset': String(2 * 1024 * 1024) } })).status).toBe(409);
    expect((await raw(server.port, { method: 'PUT', path: `/hangup/${p.key}`, body: rest, token: WRITE, headers: { 'Upload-Offset': String(kept) } })).status).toBe(201);
    // (Buffer.compare: toEqual on megabytes takes a minute)
    expect(Buffer.compare(await fs.readFile(path.join(root, 'hangup', ...p.key.split('/'))), Buffer.from(p.bytes))).toBe(0);
    expect(await filesUnder(path.join(root, 'hangup'))).toEqual([p.key]);
  });

  it('refuses (422) a resumed upload whose bytes, with those kept, do not match the key, and drops what it kept', async () => {
    const p = makePack(2 * 1024 * 1024);
    const half = 1024 * 1024;
    // a first upload of the first half, cut off by a wrong length: the server keeps what came
    await new Promise<void>((resolve) => {
      const req = http.request({
        host: '127.0.0.1',
        port: server.port,
        method: 'PUT',
        path: `/badresume/${p.key}`,
        headers: { Authorization: `Bearer ${WRITE}`, 'Content-Length': p.bytes.byteLength },
        agent: false,
      });
      req.on('error', () => resolve());
      req.write(p.bytes.subarray(0, half), () => setTimeout(() => req.destroy(), 50));
    });
    let kept = 0;
    for (let last = -1, deadline = Date.now() + 5000; Date.now() < deadline; last = kept) {
      const head = await raw(server.port, { method: 'HEAD', path: `/badresume/${p.key}?partial`, token: READ });
      if (head.status === 200) kept = Number(head.headers['upload-offset']);
      if (kept > 0 && kept === last) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(kept).toBeGreaterThan(0);
    const wrong = Buffer.from(p.bytes.subarray(kept));
    wrong[wrong.length - 1] ^= 1;
    expect((await raw(server.port, { method: 'PUT', path: `/badresume/${p.key}`, body: wrong, token: WRITE, headers: { 'Upload-Offset': String(kept) } })).status).toBe(422);
    expect(await filesUnder(path.join(root, 'badresume'))).toEqual([]);
  });

  it('serves byte ranges (206) and refuses unsatisfiable ones (416)', async () => {
    const p = makePack(10_000);
    await raw(server.port, { method: 'PUT', path: `/range/${p.key}`, body: p.bytes, token: WRITE });
    const r = await raw(server.port, { path: `/range/${p.key}`, headers: { Range: 'bytes=100-199' }, token: READ });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe('bytes 100-199/10000');
    expect(r.body.equals(Buffer.from(p.bytes.subarray(100, 200)))).toBe(true);
    const tail = await raw(server.port, { path: `/range/${p.key}`, headers: { Range: 'bytes=9990-' }, token: READ });
    expect([tail.status, tail.body.byteLength]).toEqual([206, 10]);
    const bad = await raw(server.port, { path: `/range/${p.key}`, headers: { Range: 'bytes=10000-10005' }, token: READ });
    expect([bad.status, bad.headers['content-range']]).toEqual([416, 'bytes */10000']);
    const multi = await raw(server.port, { path: `/range/${p.key}`, headers: { Range: 'bytes=0-1,5-6' }, token: READ });
    expect(multi.status).toBe(400);
  });

  it('stores into <repo>/.ckpt when the repository folder holds one', async () => {
    await fs.mkdir(path.join(root, 'work', '.ckpt'), { recursive: true });
    const m = makeMeta();
    expect((await raw(server.port, { method: 'PUT', path: `/work/${m.key}`, body: m.bytes, token: WRITE })).status).toBe(201);
    expect(await fs.readFile(path.join(root, 'work', '.ckpt', ...m.key.split('/')))).toEqual(Buffer.from(m.bytes));
  });

  it('serves one store per top-level name; nested names are refused', async () => {
    const p = makePack();
    expect((await raw(server.port, { method: 'PUT', path: `/model-a/${p.key}`, body: p.bytes, token: WRITE })).status).toBe(201);
    const list = await raw(server.port, { path: '/model-a/?list=objects/packs/', token: READ });
    expect(JSON.parse(list.body.toString())).toMatchObject([{ key: p.key, size: p.bytes.byteLength }]);
    // a store must not be planted inside another one (its locks/ or tmp/)
    const nested = await raw(server.port, { method: 'PUT', path: `/model-a/locks/${p.key}`, body: p.bytes, token: WRITE });
    expect(nested.status).toBe(400);
  });
});

describe('store server: paths', () => {
  it('refuses (400) anything that is not /<repo>/<store key>, and nothing escapes the root', async () => {
    const p = makePack();
    const id = p.key.slice('objects/packs/'.length, -'.pack'.length);
    await fs.symlink(outside, path.join(root, 'evil'));
    await fs.mkdir(path.join(root, 'evilrepo'));
    await fs.symlink(outside, path.join(root, 'evilrepo', '.ckpt'));
    const paths = [
      `/r/../outside/${p.key}`,
      `/../outside/${p.key}`,
      `/r/objects/packs/../../../outside/${id}.pack`,
      `/r/objects%2Fpacks%2F${id}.pack`,
      `/r/objects%2fpacks%2f${id}.pack`,
      `/%2e%2e/outside/${p.key}`,
      `/r%5C..%5Coutside/${p.key}`,
      `/r\\..\\outside/${p.key}`,
      `/r/${p.key}%00`,
      `http://127.0.0.1/r/${p.key}`,
      `//outside/${p.key}`,
      `/r/objects/packs/zz.pack`,
      `/r/tmp/x`,
      `/r/locks/refs/heads/main.lock`,
      `/.hidden/${p.key}`,
      `/r/.ckpt/${p.key}`,
      `/evil/${p.key}`,
      `/evilrepo/${p.key}`,
      `/${p.key}`,
    ];
    for (const target of paths) {
      const res = await raw(server.port, { method: 'PUT', path: target, body: p.bytes, token: WRITE });
      expect(res.status, target).toBe(400);
      const get = await raw(server.port, { path: target, token: WRITE });
      expect(get.status, target).toBe(400);
    }
    for (const prefix of ['../', '..%2F', '/etc', 'objects/../../']) {
      const res = await raw(server.port, { path: `/r/?list=${prefix}`, token: READ });
      expect(res.status, prefix).toBe(400);
    }
    expect(await filesUnder(outside)).toEqual([]);
    expect(await fs.readdir(base)).toEqual(['outside', 'root']);
    await fs.rm(path.join(root, 'evil'));
    await fs.rm(path.join(root, 'evilrepo'), { recursive: true });
  });

  it('refuses methods it does not serve (405)', async () => {
    expect((await raw(server.port, { method: 'POST', path: `/r/${makePack().key}`, token: WRITE })).status).toBe(405);
  });
});

describe('store server: refs', () => {
  it('updates refs only with a precondition, and answers 412 with the current value', async () => {
    const [a, b, c] = [commitId(), commitId(), commitId()];
    const put = (id: string, headers: Record<string, string>) =>
      raw(server.port, { method: 'PUT', path: '/refs-repo/refs/heads/main', body: Buffer.from(`${id}\n`), headers, token: WRITE });
    expect((await put(a, {})).status).toBe(428);
    expect((await put(a, { 'If-None-Match': '*' })).status).toBe(200);
    const again = await put(b, { 'If-None-Match': '*' });
    expect(again.status).toBe(412);
    expect(JSON.parse(again.body.toString())).toMatchObject({ code: 'E_REF_CONFLICT', actual: a });
    expect(again.headers.etag).toBe(`"${a}"`);
    expect((await put(c, { 'If-Match': `"${b}"` })).status).toBe(412);
    expect((await put('not-an-id', { 'If-Match': `"${a}"` })).status).toBe(400);
    expect((await put(b, { 'If-Match': `"${a}"` })).status).toBe(200);
    const get = await raw(server.port, { path: '/refs-repo/refs/heads/main', token: READ });
    expect([get.status, get.body.toString(), get.headers.etag]).toEqual([200, `${b}\n`, `"${b}"`]);
    const del = (headers: Record<string, string>) =>
      raw(server.port, { method: 'DELETE', path: '/refs-repo/refs/heads/main', headers, token: WRITE });
    expect((await del({})).status).toBe(428);
    expect((await del({ 'If-Match': `"${a}"` })).status).toBe(412);
    expect((await del({ 'If-Match': b })).status).toBe(204);
    expect((await raw(server.port, { path: '/refs-repo/refs/heads/main', token: READ })).status).toBe(404);
  });
});

describe('store server: limits, logging and shutdown', () => {
  it('refuses bodies over maxBodyBytes with 413, declared or counted, storing nothing', async () => {
    const small = await startStoreServer({ root: path.join(base, 'small'), maxBodyBytes: 10_000, log: () => undefined });
    try {
      const p = makePack(20_000);
      const declared = await raw(small.port, { method: 'PUT', path: `/r/${p.key}`, body: p.bytes });
      expect(declared.status).toBe(413);
      const chunks = Array.from({ length: 5 }, (_, i) => p.bytes.subarray(i * 4000, (i + 1) * 4000));
      const counted = await raw(small.port, { method: 'PUT', path: `/r/${p.key}`, body: chunks });
      expect(counted.status).toBe(413);
      expect(await filesUnder(path.join(base, 'small'))).toEqual([]);
      const ok = makePack(10_000);
      expect((await raw(small.port, { method: 'PUT', path: `/r/${ok.key}`, body: ok.bytes })).status).toBe(201);
    } finally {
      await small.close();
    }
  });

  it('logs each request once with method, path, status, bytes and time', async () => {
    const p = makePack(1234);
    logged.length = 0;
    await raw(server.port, { method: 'PUT', path: `/log/${p.key}`, body: p.bytes, token: WRITE });
    await raw(server.port, { path: `/log/${p.key}`, token: READ });
    await raw(server.port, { path: `/log/${p.key}` });
    expect(logged.map((e) => [e.method, e.path, e.status, e.bytes])).toEqual([
      ['PUT', `/log/${p.key}`, 201, 1234],
      ['GET', `/log/${p.key}`, 200, 1234],
      ['GET', `/log/${p.key}`, 401, 0],
    ]);
    expect(logged.every((e) => typeof e.ms === 'number' && e.ms >= 0)).toBe(true);
  });

  it('close() lets a request in flight finish, then stops accepting', async () => {
    const s = await startStoreServer({ root: path.join(base, 'closing'), log: () => undefined });
    const p = makePack(2 * 1024 * 1024);
    const events: string[] = [];
    const response = new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: s.port,
          method: 'PUT',
          path: `/r/${p.key}`,
          headers: { 'Content-Length': p.bytes.byteLength },
          agent: false,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.write(p.bytes.subarray(0, 1024 * 1024), () => {
        // the request is in flight: shut down now, and send the rest a little later
        setTimeout(() => {
          void s.close().then(() => events.push('closed'));
          setTimeout(() => {
            events.push('sending the rest');
            req.end(p.bytes.subarray(1024 * 1024));
          }, 200);
        }, 50);
      });
    });
    expect(await response).toBe(201);
    await s.close();
    // close() waited for the upload that was still arriving
    expect(events).toEqual(['sending the rest', 'closed']);
    expect((await fs.stat(path.join(base, 'closing', 'r', ...p.key.split('/')))).size).toBe(p.bytes.byteLength);
    await expect(raw(s.port, { path: '/r/?list=' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
