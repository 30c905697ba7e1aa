/**
 * Acceptance (issue 12, criterion 6): a push SIGKILLed when half its bytes are on the wire, run
 * again, sends at most 10% more than the bytes still missing, over `ckpt serve` (which keeps a
 * pack upload cut midway and resumes it by offset) and over S3 (which keeps the parts of the
 * unfinished multipart upload; the re-run lists them, checks their MD5 against the local file
 * and sends the rest). Bytes are counted on the wire by a proxy in front of the server, headers
 * included. The remote then clones byte-exact and its clone passes `fsck --read-data`.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startStoreServer } from '../../src/serve/storeServer.js';
import { startS3Server } from '../backend/s3Server.js';
import { startCountingProxy } from './countingProxy.js';
import { cleanupTempDirs, newRepo, start, tempDir } from './helpers.js';
import { checkRemote, model, runJson, runOk, type TestRemote } from './remoteHelpers.js';

afterAll(cleanupTempDirs);

/** Every file under the store's objects/: what a first push of the repository sends. */
async function objectBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))).size;
  }
  return n;
}

const ELEMENTS = 1 << 20; // 4 MiB tensors

describe.each([
  // S3 sends a part cut off again whole: the parts (5 MiB here, one in flight) must be small
  // against what remains, as 64 MiB parts, two in flight, are against a 4 GiB push
  { kind: 'http' as const, tensors: 10 },
  { kind: 's3' as const, tensors: 24 },
])('push killed at 50% over $kind', ({ kind, tensors }) => {
  it('resends at most 10% more than what remained, and the remote clones byte-exact', async () => {
    const a = await newRepo();
    const bytes = model(Array.from({ length: tensors }, (_, i) => i + 1), ELEMENTS);
    await fs.writeFile(path.join(a, 'model.safetensors'), bytes);
    await runJson(a, {}, 'commit', 'model.safetensors', '-m', 'one', '--no-compress');
    const total = await objectBytes(path.join(a, '.ckpt', 'objects'));

    let stop: () => Promise<void>;
    let url: string;
    let remote: TestRemote;
    const env: NodeJS.ProcessEnv = {};
    if (kind === 'http') {
      const server = await startStoreServer({ root: await tempDir('ckpt-resume-serve-'), log: () => undefined });
      const { hostname, port } = new URL(server.url);
      const proxy = await startCountingProxy(hostname, Number(port));
      url = `http://${proxy.address}/r`;
      remote = { kind, newUrl: () => url, args: [], env, stop: async () => undefined };
      stop = async () => {
        await proxy.close();
        await server.close();
      };
      var counter = proxy;
    } else {
      const s3 = await startS3Server('resume');
      const { hostname, port } = new URL(s3.endpoint);
      const proxy = await startCountingProxy(hostname, Number(port));
      Object.assign(env, { AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey, CKPT_S3_PART_MB: '5', CKPT_S3_MULTIPART_MB: '5', CKPT_S3_CONCURRENCY: '1' });
      // the re-run is in this process: the S3 driver reads its settings from process.env
      Object.assign(process.env, env);
      url = `s3://resume/r`;
      remote = { kind, newUrl: () => url, args: ['--endpoint', `http://${proxy.address}`, '--region', s3.region], env, stop: async () => undefined };
      stop = async () => {
        await proxy.close();
        await s3.stop();
        delete process.env.CKPT_S3_PART_MB;
        delete process.env.CKPT_S3_MULTIPART_MB;
        delete process.env.CKPT_S3_CONCURRENCY;
      };
      var counter = proxy;
    }
    try {
      await runOk(a, env, 'remote', 'add', 'origin', url, ...remote.args);
      const child = start(a, ['push'], env);
      let killedAt = 0;
      counter.onSent = (n) => {
        if (!killedAt && n >= total / 2) {
          killedAt = n;
          child.child.kill('SIGKILL');
        }
      };
      const r = await child.done;
      counter.onSent = undefined;
      expect(r.signal, `the push ended before half its bytes were sent: ${r.stderr}`).toBe('SIGKILL');
      // what reached the proxy before the kill (a little more than killedAt: the socket buffers)
      await new Promise((res) => setTimeout(res, 200));
      const before = counter.sent;
      const again = await runJson(a, env, 'push');
      expect(again.updates[0].status).toBe('created');
      const resent = counter.sent - before;
      const remaining = total - before;
      console.log(`${kind}: ${total} B to push, killed at ${killedAt} B (${before} B on the wire), re-run sent ${resent} B = ${((100 * resent) / remaining - 100).toFixed(1)}% over the ${remaining} B remaining`);
      expect(resent).toBeLessThanOrEqual(1.1 * remaining);

      await checkRemote(remote, url);
      const dir = await tempDir('ckpt-resume-clone-');
      await runOk(dir, env, 'clone', url, 'c', ...remote.args);
      expect(Buffer.compare(await fs.readFile(path.join(dir, 'c', 'model.safetensors')), Buffer.from(bytes))).toBe(0);
    } finally {
      await stop();
    }
  }, 120_000);
});
