/**
 * Runs the shared transport suite against every transport: a directory, a real storeServer on
 * 127.0.0.1, and an S3 server on 127.0.0.1 (moto, or s3rver without the CAS race tests).
 */
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryTransport } from '../../src/remote/directoryTransport.js';
import { HttpTransport } from '../../src/remote/httpTransport.js';
import { openTransport } from '../../src/remote/openTransport.js';
import { S3Transport } from '../../src/remote/s3Transport.js';
import { startStoreServer, type StoreServer } from '../../src/remote/storeServer.js';
import { commitId, makePack, transportSuite } from './transportSuite.js';
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

transportSuite('directory', async () => {
  const dir = path.join(root, `dir-${++n}`);
  return {
    open: () => openTransport(dir),
    plant: (key, bytes) => plantFile(path.join(dir, ...key.split('/')), bytes),
  };
});

describe('directory transport specifics', () => {
  it('uses <dir>/.ckpt when the folder is a repository, and takes file:// URLs', async () => {
    const dir = path.join(root, `repo-${++n}`);
    await fs.mkdir(path.join(dir, '.ckpt'), { recursive: true });
    const t = await openTransport(pathToFileURL(dir).href);
    expect(t).toBeInstanceOf(DirectoryTransport);
    const p = makePack();
    await t.put(p.key, { bytes: p.bytes });
    await t.casRef('refs/heads/main', null, commitId());
    expect((await fs.stat(path.join(dir, '.ckpt', ...p.key.split('/')))).size).toBe(p.bytes.byteLength);
    expect(await fs.readdir(path.join(dir, '.ckpt', 'refs', 'heads'))).toEqual(['main']);
    // the ref lock is released and tmp/ holds nothing after the writes
    expect(await fs.readdir(path.join(dir, '.ckpt', 'locks', 'refs', 'heads'))).toEqual([]);
    expect(await fs.readdir(path.join(dir, '.ckpt', 'tmp'))).toEqual([]);
  });

  it('resolves relative paths against cwd and refuses unknown schemes', async () => {
    const t = await openTransport(`dir-rel-${++n}`, { cwd: root });
    expect(t.url).toBe(pathToFileURL(path.join(root, `dir-rel-${n}`)).href);
    await expect(openTransport('ftp://example/x')).rejects.toMatchObject({ code: 'E_USAGE' });
    expect(await openTransport('http://127.0.0.1:1/repo')).toBeInstanceOf(HttpTransport);
    expect(await openTransport('s3://some-bucket/a/b', { s3: { credentials: { accessKeyId: 'a', secretAccessKey: 'b' } } })).toMatchObject({
      url: 's3://some-bucket/a/b/',
    });
  });
});

describe('over HTTP', () => {
  let server: StoreServer;
  const writeToken = 'write-token-for-tests';
  const serveRoot = () => path.join(root, 'served');

  beforeAll(async () => {
    server = await startStoreServer({
      root: serveRoot(),
      readToken: 'read-token-for-tests',
      writeToken,
      log: () => undefined,
    });
  });
  afterAll(async () => {
    await server.close();
  });

  transportSuite('http', async () => {
    const repo = `repo-${++n}`;
    return {
      open: async () => new HttpTransport(`${server.url}/${repo}`, { token: writeToken }),
      plant: (key, bytes) => plantFile(path.join(serveRoot(), repo, ...key.split('/')), bytes),
    };
  });

  it('reports a missing or wrong token as E_AUTH', async () => {
    const p = makePack();
    const anonymous = new HttpTransport(`${server.url}/auth`);
    const reader = new HttpTransport(`${server.url}/auth`, { token: 'read-token-for-tests' });
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
  transportSuite(
    's3',
    async () => {
      const prefix = `t${++n}/remote`;
      return {
        open: async () =>
          new S3Transport(`s3://${s3.bucket}/${prefix}`, {
            endpoint: s3.endpoint,
            region: s3.region,
            credentials: s3.credentials,
            partSize: 5 * 1024 * 1024,
          }),
        plant: async (key, bytes) => {
          await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `${prefix}/${key}`, Body: bytes }));
        },
      };
    },
    { casSkipReason },
  );
});
