/**
 * Acceptance 3: SIGKILL in the middle of a push and of a fetch, over a folder and over `ckpt
 * serve`. After each kill the remote (or the fetching store) is consistent and still at its old
 * ref; the re-run completes and moves exactly what was still missing: the object bytes it sends
 * (receives) equal the sizes of the objects that appear on the other side during the re-run.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, newRepo, prng, start, tempDir } from './helpers.js';
import { checkRemote, model, run, runJson, runOk, startRemote, type TestRemote } from './remoteHelpers.js';

afterAll(cleanupTempDirs);

const TRIALS = 5;
const MAX_ATTEMPTS = 12;
const ELEMENTS = 128 * 1024; // 512 KiB tensors

/** Every regular file under `dir` (relative path -> size), skipping tmp/, locks/ and partial downloads. */
async function files(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (rel: string) => {
    let ents;
    try {
      ents = await fs.readdir(path.join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        if (r !== 'tmp' && r !== 'locks' && r !== 'logs') await walk(r);
      } else if (!e.name.endsWith('.part') && !e.name.startsWith('.')) out.set(r, (await fs.stat(path.join(dir, r))).size);
    }
  };
  await walk('');
  return out;
}

function addedBytes(before: Map<string, number>, after: Map<string, number>, prefix: string): number {
  let n = 0;
  for (const [k, v] of after) if (k.startsWith(prefix) && !before.has(k)) n += v;
  return n;
}

/** Kills the process when `fire` first returns true (polled), or after it exits on its own. */
async function killWhen(cwd: string, env: NodeJS.ProcessEnv, args: string[], fire: () => Promise<boolean>) {
  const p = start(cwd, args, env);
  let killed = false;
  let exited = false;
  p.done.then(() => (exited = true), () => (exited = true));
  while (!exited) {
    if (await fire()) {
      killed = p.child.kill('SIGKILL');
      break;
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  const r = await p.done;
  return { killed: killed && r.signal === 'SIGKILL', result: r };
}

async function anyNew(dir: string, before: Set<string>, test: (name: string) => boolean): Promise<boolean> {
  for (const sub of ['objects/packs', 'objects/index', 'objects/meta', 'tmp']) {
    let names: string[];
    try {
      names = await fs.readdir(path.join(dir, sub));
    } catch {
      continue;
    }
    for (const n of names) if (!before.has(`${sub}/${n}`) && test(`${sub}/${n}`)) return true;
  }
  return false;
}

async function names(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for (const sub of ['objects/packs', 'objects/index', 'objects/meta', 'tmp']) {
    for (const n of await fs.readdir(path.join(dir, sub)).catch(() => [] as string[])) out.add(`${sub}/${n}`);
  }
  return out;
}

const TRIGGERS: { name: string; test: (n: string) => boolean }[] = [
  { name: 'first upload begins', test: () => true },
  { name: 'first pack lands', test: (n) => n.startsWith('objects/packs/') && n.endsWith('.pack') },
  { name: 'first index file lands', test: (n) => n.startsWith('objects/index/') },
];

describe.each(['directory', 'http'] as const)('SIGKILL during push and fetch over %s', (kind) => {
  let remote: TestRemote;
  beforeAll(async () => {
    remote = await startRemote(kind);
  });
  afterAll(async () => {
    await remote?.stop();
  });

  it(`leaves both sides at their old refs and resumes with only what is missing`, async () => {
    const env = remote.env;
    const url = remote.newUrl();
    const remoteDir = remote.dirOf!(url);
    const a = await newRepo('--chunk-size', '65536');
    const file = path.join(a, 'model.safetensors');
    const rand = prng(kind === 'directory' ? 11 : 22);
    let step = 0;
    const commit = async () => {
      step++;
      await fs.writeFile(file, model(Array.from({ length: 12 }, () => rand()), ELEMENTS));
      return (await runJson(a, env, 'commit', 'model.safetensors', '-m', `step ${step}`, '--no-compress')).id as string;
    };
    await commit();
    await runOk(a, env, 'remote', 'add', 'origin', url, ...remote.args);
    await runOk(a, env, 'push');
    const bParent = await tempDir('ckpt-kill-b-');
    await runOk(bParent, env, 'clone', url, 'b', '--no-checkout', ...remote.args);
    const b = path.join(bParent, 'b');
    const bStore = path.join(b, '.ckpt');

    let pushKills = 0;
    let fetchKills = 0;
    for (let attempt = 0; attempt < MAX_ATTEMPTS && (pushKills < TRIALS || fetchKills < TRIALS); attempt++) {
      const old = (await runJson(a, env, 'log', '-n', '1'))[0].id as string;
      await commit();
      const tip = await commit();
      const trigger = TRIGGERS[attempt % TRIGGERS.length];

      // push, killed
      const seen = await names(remoteDir);
      const k = await killWhen(a, env, ['push', '--jobs', '1'], () => anyNew(remoteDir, seen, trigger.test));
      const refs = await checkRemote(remote, url);
      if (k.killed) {
        pushKills++;
        expect(refs['refs/heads/main'], `push killed when ${trigger.name}`).toBe(old);
      } else expect(k.result.code, k.result.stderr).toBe(0);
      const before = await files(remoteDir);
      const again = await runJson(a, env, 'push', '--jobs', '1');
      const after = await files(remoteDir);
      expect(again.updates[0].new).toBe(tip);
      for (const kindName of ['pack', 'index', 'meta'] as const) {
        const prefix = { pack: 'objects/packs/', index: 'objects/index/', meta: 'objects/meta/' }[kindName];
        expect(again.transfer.sentByKind[kindName], `${kindName} bytes re-sent after a kill when ${trigger.name}`).toBe(addedBytes(before, after, prefix));
      }

      // fetch, killed
      const bSeen = await names(bStore);
      const bOld = (await runJson(b, env, 'log', 'origin/main', '-n', '1'))[0].id as string;
      const kf = await killWhen(b, env, ['fetch', '--jobs', '1'], () => anyNew(bStore, bSeen, trigger.test));
      const fsck = await runJson(b, env, 'fsck', '--read-data');
      expect(fsck.ok, JSON.stringify(fsck.faults)).toBe(true);
      if (kf.killed) {
        fetchKills++;
        expect((await runJson(b, env, 'log', 'origin/main', '-n', '1'))[0].id, `fetch killed when ${trigger.name}`).toBe(bOld);
      } else expect(kf.result.code, kf.result.stderr).toBe(0);
      const bBefore = await files(bStore);
      const f = await runJson(b, env, 'fetch', '--jobs', '1');
      const bAfter = await files(bStore);
      expect(f.transfer.receivedByKind.pack).toBe(addedBytes(bBefore, bAfter, 'objects/packs/'));
      expect(f.transfer.receivedByKind.meta).toBe(addedBytes(bBefore, bAfter, 'objects/meta/'));
      expect((await runJson(b, env, 'log', 'origin/main', '-n', '1'))[0].id).toBe(tip);
      const r = await run(b, env, 'fsck', '--read-data', '--json');
      expect(JSON.parse(r.stdout).ok).toBe(true);
    }
    console.log(`${kind}: ${pushKills} pushes and ${fetchKills} fetches killed mid-way`);
    expect(pushKills).toBeGreaterThanOrEqual(TRIALS);
    expect(fetchKills).toBeGreaterThanOrEqual(TRIALS);
  }, 600_000);
});
