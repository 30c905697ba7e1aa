/**
 * A push racing gc on the remote, folder and HTTP: 20 rounds each, gc started at a random point
 * of the push. The push (a child process, as a user runs it) either lands whole — the remote
 * passes fsck and gives the commit back byte for byte — or fails with a typed exit code; it
 * never exits 0 with data missing, and the remote stays sound either way.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../src/core/seededRandom.js';
import { HttpBackend } from '../../src/backend/httpBackend.js';
import { push } from '../../src/sync/push.js';
import { startStoreServer, type StoreServer } from '../../src/serve/storeServer.js';
import { remoteError, type Backend } from '../../src/backend/backend.js';
import { checkout } from '../../src/repo/checkout.js';
import { commitFiles } from '../../src/repo/commit.js';
import { fsck } from '../../src/repo/fsck.js';
import { gc } from '../../src/repo/gc.js';
import { Repository } from '../../src/repo/repository.js';
import { start } from '../e2e/helpers.js';

const ROUNDS = 20;
const FILES = 24;
const TOKEN = 'race-token';
/** Exit codes of typed errors (exitCodes.ts); 70 is an internal fault. */
const TYPED = new Set([2, 4, 5, 6, 7, 8]);

let base: string;
let server: StoreServer;

beforeAll(async () => {
  base = await fs.mkdtemp(path.join(os.tmpdir(), 'ckpt-push-gc-'));
  server = await startStoreServer({ root: path.join(base, 'served'), writeToken: TOKEN, log: () => undefined });
});
afterAll(async () => {
  await server.close();
  await fs.rm(base, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// the folder and the HTTP runs share nothing but the server, so they run side by side
describe.concurrent.each(['folder', 'http'] as const)('push racing gc on a %s remote', (via) => {
  it(`${ROUNDS} rounds: every push lands whole or fails typed`, async () => {
    const rand = seededRandom(via === 'folder' ? 101 : 202);
    const remoteDir = via === 'folder' ? path.join(base, 'folder-remote') : path.join(base, 'served', 'race');
    const remote = await Repository.init(remoteDir);
    const url = via === 'folder' ? remoteDir : `${server.url}/race`;
    const localDir = path.join(base, `local-${via}`);
    await fs.mkdir(localDir);
    const local = await Repository.init(localDir);
    const env = { CKPT_TOKEN: TOKEN };
    let pushMs = 0;
    const outcomes: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // new content each round: FILES small files, all unknown to the remote
      const files: string[] = [];
      for (let i = 0; i < FILES; i++) {
        const f = path.join(localDir, 'ck', `r${round}-f${i}.bin`);
        await fs.mkdir(path.dirname(f), { recursive: true });
        await fs.writeFile(f, randomBytes(2048 + Math.floor(rand() * 4096)));
        files.push(f);
      }
      const c = await commitFiles(local, files, { message: `round ${round}` });
      const t0 = Date.now();
      const run = start(localDir, ['push', url, 'main'], env);
      // round 0 measures the push alone; later rounds start gc anywhere within its span
      let gcErr: unknown;
      const gcDone =
        round === 0
          ? Promise.resolve()
          : sleep(Math.floor(rand() * pushMs * 1.2)).then(() => gc(remote, { reflogWindowMs: 0 }).then(() => undefined, (e: unknown) => void (gcErr = e)));
      const r = await run.done;
      await gcDone;
      if (round === 0) pushMs = Date.now() - t0;
      expect(gcErr).toBeUndefined();
      if (r.code === 0) {
        outcomes.push('landed');
        const check = await fsck(remote);
        expect(check.faults, `round ${round}: remote fsck after a push that said it succeeded`).toEqual([]);
        expect(await remote.store.refs.read('refs/heads/main')).toBe(c.id);
        const out = path.join(base, `out-${via}-${round}`);
        await fs.mkdir(out);
        const co = await checkout(remote, c.id, { output: out });
        expect(co.files).toHaveLength(files.length);
        for (const f of files.slice(0, 5).concat(files.slice(-5))) {
          const got = await fs.readFile(path.join(out, 'ck', path.basename(f)));
          expect(got.equals(await fs.readFile(f)), f).toBe(true);
        }
        await fs.rm(out, { recursive: true });
      } else {
        outcomes.push(`exit ${r.code}`);
        expect(TYPED.has(r.code ?? -1), `round ${round}: exit ${r.code}: ${r.stderr}`).toBe(true);
        expect(r.stderr).not.toMatch(/\n\s+at /);
        expect((await fsck(remote)).faults).toEqual([]);
      }
    }
    if (process.env.CKPT_TEST_REPORT) process.stderr.write(`push racing gc (${via}): push alone ${pushMs} ms; ${outcomes.join(', ')}\n`);
    expect(outcomes.filter((o) => o === 'landed').length).toBeGreaterThan(0);
  }, 120_000);
});

describe('a push that lost its lease', () => {
  it('moves no ref and fails E_LOCKED when the lease could not be renewed in time', async () => {
    const s = await startStoreServer({ root: path.join(base, 'lease-lost'), leaseMs: 300, log: () => undefined });
    try {
      const dir = path.join(base, 'lease-local');
      await fs.mkdir(dir);
      const repo = await Repository.init(dir);
      await fs.writeFile(path.join(dir, 'm.bin'), randomBytes(5000));
      await commitFiles(repo, [path.join(dir, 'm.bin')], { message: 'm' });
      const http = new HttpBackend(`${s.url}/r`);
      // renewals never get through (a proxy dropping them, a stalled client) ...
      const inner = http as unknown as { request: (a: { path: string }, ...rest: unknown[]) => Promise<unknown> };
      const request = inner.request.bind(http);
      inner.request = (a, ...rest) => (a.path.startsWith('?renew=') ? Promise.reject(remoteError(http.url, 'renewal dropped', { status: 503 })) : request(a, ...rest));
      // ... while the uploads take longer than the lease lives
      const slow = new Proxy(http, {
        get(target, prop) {
          if (prop === 'put') return async (...args: Parameters<Backend['put']>) => (await sleep(400), target.put(...args));
          const v = Reflect.get(target, prop) as unknown;
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      await expect(push(repo, slow, { refs: ['main'] })).rejects.toMatchObject({ code: 'E_LOCKED', message: expect.stringContaining('lease') });
      expect(await http.readRef('refs/heads/main')).toBeNull();
      await http.close();
    } finally {
      await s.close();
    }
  });
});
