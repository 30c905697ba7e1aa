/**
 * Issue 11, acceptance 1: every command of the README runs against a store that is not the work
 * tree's own (`ckpt --store URL ...`), on each backend: a folder, `ckpt serve` and S3 (moto). The
 * same cases for each, from a work tree with no `.ckpt/` (a fresh machine): init, commit, log,
 * show, diff, checkout (byte-exact), branch, tag, prune, gc, fsck, du.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSafetensors } from '../../src/formats/safetensors.js';
import { cleanupTempDirs, randomF32, tempDir } from './helpers.js';
import { runIn } from './inProcess.js';
import { STORE_KINDS, startStores, storeKindReady, type TestStores } from './storeBackends.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Version `v` of a small model: four tensors; the first is frozen, the others move a little each version. */
function version(v: number): Uint8Array {
  const tensors = [0, 1, 2, 3].map((t) => {
    const data = new Float32Array(randomF32(100 + t, 64 * 1024).buffer.slice(0));
    if (t > 0) for (let i = 0; i < data.length; i += 7) data[i] += v * 1e-3 * t;
    return { name: `layers.${t}.weight`, dtype: 'F32' as const, shape: [256, 256], data: new Uint8Array(data.buffer) };
  });
  return writeSafetensors(tensors);
}

const READY = Object.fromEntries(await Promise.all(STORE_KINDS.map(async (k) => [k, await storeKindReady(k)] as const)));

afterAll(cleanupTempDirs);

for (const kind of STORE_KINDS) {
  describe.skipIf(!READY[kind].ready)(`ckpt --store on a ${kind} store${READY[kind].ready ? '' : ` (skipped: ${READY[kind].why})`}`, () => {
    let stores: TestStores;
    let url: string;
    let work: string;
    let cache: string;
    let env: Record<string, string>;
    const files: Record<string, string> = {};

    const run = (...args: string[]) => runIn(work, ['--store', url, ...args], env);
    async function ok(...args: string[]): Promise<string> {
      const r = await run(...args);
      if (r.code !== 0) throw new Error(`ckpt --store ${url} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    }
    const json = async <T = any>(...args: string[]): Promise<T> => JSON.parse(await ok(...args, '--json')) as T;
    /** A case of one of the README's commands. */
    const command = (name: string, title: string, fn: () => Promise<void>) => it(`${name}: ${title}`, fn);

    beforeAll(async () => {
      stores = await startStores(kind);
      url = stores.newUrl();
      work = await tempDir('ckpt-anystore-work-');
      cache = await tempDir('ckpt-anystore-cache-');
      env = { ...stores.env, CKPT_CACHE_DIR: cache };
    });
    afterAll(async () => {
      await stores?.stop();
    });

    command('init', 'creates a store on an empty backend; a second init is refused and changes nothing', async () => {
      const r = await json('init');
      expect(r.chunkSize).toBe(1024 * 1024);
      const again = await run('init');
      expect(again.code).toBe(2);
      expect(again.stderr).toMatch(/already exists/);
      // the work tree is the current folder, and it gets no store of its own
      expect(existsSync(path.join(work, '.ckpt'))).toBe(false);
    });

    command('commit', 'stores three versions into the store, none into the work tree', async () => {
      const metrics = [0.5, 0.3, 0.4];
      for (let v = 1; v <= 3; v++) {
        const file = path.join(work, 'model.safetensors');
        const bytes = version(v);
        await fs.writeFile(file, bytes);
        files[`v${v}`] = sha(bytes);
        const r = await json('commit', 'model.safetensors', '-m', `step ${v}00`, '--step', `${v}00`, '--metric', `val_loss=${metrics[v - 1]}`);
        expect(r.files.map((f: { path: string }) => f.path)).toEqual(['model.safetensors']);
        // later versions share the frozen tensor's chunks with the first
        if (v > 1) expect(r.stats.newChunks).toBeLessThan(r.stats.chunks);
      }
      expect(existsSync(path.join(work, '.ckpt'))).toBe(false);
    });

    it('a remote of the work tree\'s store stands for its URL, with the credentials saved for it', async () => {
      const local = await tempDir('ckpt-anystore-local-');
      expect((await runIn(local, ['init', '-q'], {})).code).toBe(0);
      const creds =
        kind === 'http'
          ? ['--token', env.CKPT_TOKEN]
          : kind === 's3'
            ? ['--endpoint', env.AWS_ENDPOINT_URL_S3, '--region', env.AWS_REGION, '--access-key-id', env.AWS_ACCESS_KEY_ID, '--secret-access-key', env.AWS_SECRET_ACCESS_KEY]
            : [];
      expect((await runIn(local, ['remote', 'add', 'shared', url, ...creds], {})).code).toBe(0);
      // no credentials in the environment: only those saved with the remote
      const r = await runIn(local, ['--store', 'shared', 'log', '--json'], { CKPT_CACHE_DIR: cache });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toHaveLength(3);
      // and the work tree's own store is left as it was: no commit
      expect(JSON.parse((await runIn(local, ['log', '--json'], {})).stdout)).toHaveLength(0);
    });

    command('log', 'lists the three commits with steps and metrics', async () => {
      const log = await json<{ meta: { step: number } }[]>('log');
      expect(log.map((c) => c.meta.step)).toEqual([300, 200, 100]);
      expect(await ok('log')).toMatch(/val_loss/);
      // $CKPT_STORE names the store as --store does
      const viaEnv = await runIn(work, ['log', '--json'], { ...env, CKPT_STORE: url });
      expect(viaEnv.code).toBe(0);
      expect(JSON.parse(viaEnv.stdout)).toHaveLength(3);
    });

    command('show', 'shows a commit with its files and metadata', async () => {
      const s = await json('show', 'HEAD~1');
      expect(s.commit.meta.step).toBe(200);
      expect(JSON.stringify(s)).toContain('model.safetensors');
    });

    command('diff', 'finds the three moving tensors changed and the frozen one not', async () => {
      const d = await json('diff', 'HEAD~2', 'HEAD');
      expect(d.tensors.changed.map((t: { name: string }) => t.name).sort()).toEqual(['layers.1.weight', 'layers.2.weight', 'layers.3.weight']);
      expect(d.tensors.unchanged.map((t: { name: string }) => t.name)).toEqual(['layers.0.weight']);
    });

    command('checkout', 'writes best:val_loss and an older commit back byte-exact', async () => {
      await ok('checkout', 'best:val_loss', '-o', 'out/');
      expect(sha(await fs.readFile(path.join(work, 'out', 'model.safetensors')))).toBe(files.v2);
      await ok('checkout', 'HEAD~2', '-o', 'first.safetensors');
      expect(sha(await fs.readFile(path.join(work, 'first.safetensors')))).toBe(files.v1);
    });

    command('branch', 'creates, lists and commits onto a branch', async () => {
      await ok('branch', 'exp', 'HEAD~1');
      const list = await json('branch');
      expect(JSON.stringify(list)).toContain('exp');
      await fs.writeFile(path.join(work, 'model.safetensors'), version(9));
      const r = await json('commit', 'model.safetensors', '-m', 'experiment', '--branch', 'exp', '--metric', 'val_loss=0.9');
      expect(r.branch).toBe('refs/heads/exp');
      const log = await json<{ message: string }[]>('log', 'exp');
      expect(log.map((c) => c.message)).toEqual(['experiment', 'step 200', 'step 100']);
    });

    command('tag', 'tags a commit and checks the tag out byte-exact', async () => {
      await ok('tag', 'best', 'best:val_loss');
      expect(JSON.stringify(await json('tag'))).toContain('best');
      await ok('checkout', 'best', '-o', 'tagged.safetensors');
      expect(sha(await fs.readFile(path.join(work, 'tagged.safetensors')))).toBe(files.v2);
    });

    command('prune', 'keeps the last two commits of main and drops the data of the first', async () => {
      await ok('branch', '-d', 'exp');
      const r = await json('prune', '--keep-last', '2');
      expect(r.pruned.map((d: { message: string }) => d.message)).toEqual(['step 100']);
      const gone = await run('checkout', 'HEAD~2', '-o', 'pruned.safetensors');
      expect(gone.code).toBe(4);
      expect(gone.stderr).toMatch(/pruned/);
    });

    command('gc', 'runs, and what is kept still checks out byte-exact', async () => {
      const r = await json('gc');
      expect(r.commits.reachable).toBeGreaterThanOrEqual(3);
      await ok('checkout', 'HEAD', '-o', 'head.safetensors');
      expect(sha(await fs.readFile(path.join(work, 'head.safetensors')))).toBe(files.v3);
    });

    command('fsck', 'finds the store whole, every byte re-hashed', async () => {
      const r = await json('fsck', '--read-data');
      expect(r.ok).toBe(true);
      expect(r.checked.commits).toBeGreaterThanOrEqual(3);
    });

    command('du', 'reports checkpoint bytes against stored bytes', async () => {
      const u = await json('du');
      expect(u.commits).toBeGreaterThanOrEqual(2);
      expect(u.logical).toBeGreaterThan(u.chunks);
    });

    it('leaves no scratch files behind and no store in the work tree', async () => {
      expect(existsSync(path.join(work, '.ckpt'))).toBe(false);
      const scratch = (await fs.readdir(cache).catch(() => [] as string[])).map((d) => path.join(cache, d, 'scratch'));
      for (const s of scratch) expect(await fs.readdir(s).catch(() => [])).toEqual([]);
    });
  });
}

describe('what --store refuses', () => {
  it('a store elsewhere for the commands that copy between stores, and --store for clone and serve', async () => {
    const work = await tempDir('ckpt-anystore-refuse-');
    const env = { CKPT_CACHE_DIR: await tempDir('ckpt-anystore-cache-') };
    for (const cmd of [['push'], ['fetch'], ['pull'], ['remote', 'list']]) {
      const r = await runIn(work, ['--store', 'http://127.0.0.1:9/none', ...cmd], env);
      expect(r.code, `${cmd.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`ckpt ${cmd[0]} does not run against a store elsewhere (--store http://127.0.0.1:9/none)`);
    }
    for (const cmd of [['clone', 'http://127.0.0.1:9/none'], ['serve']]) {
      const r = await runIn(work, cmd, { ...env, CKPT_STORE: 's3://bucket/prefix' });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`ckpt ${cmd[0]} does not run against another store ($CKPT_STORE s3://bucket/prefix)`);
    }
  });

  it('a store that is not there, naming it and how to make one', async () => {
    const work = await tempDir('ckpt-anystore-none-');
    const r = await runIn(work, ['--store', path.join(work, 'nothing'), 'log'], {});
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/no ckpt store at .*nothing/);
  });
});
