/**
 * Every command of the README against every kind of damage to a store: a file where a folder
 * should be and the reverse, empty, truncated, garbage and unreadable files, a `null` or
 * out-of-range config, a HEAD that points out of the store. Each run must end with a typed error
 * (or succeed when it never needs what is damaged), never exit 70, never print a stack frame,
 * never hang, and leave the store exactly as it was when it fails; fsck must report every damage.
 *
 * "Unreadable" is a FIFO in place of the file: tests run as root, where chmod 000 does not stop a
 * read, and a FIFO is worse (a plain read blocks forever) unless ckpt checks what it opens.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ckptOk, cleanupTempDirs, tempDir, writeBigSafetensors } from '../e2e/helpers.js';
import { limiter, runBatch, type BatchRun } from './measuredCli.js';

type Damage = (store: string) => Promise<void>;

async function only(dir: string, pattern: RegExp): Promise<string> {
  const names = (await fs.readdir(dir)).filter((n) => pattern.test(n)).sort();
  if (names.length === 0) throw new Error(`nothing matching ${pattern} in ${dir}`);
  return path.join(dir, names[0]);
}
const pack = (s: string) => only(path.join(s, 'objects', 'packs'), /\.pack$/);
const index = (s: string) => only(path.join(s, 'objects', 'index'), /\.idx$/);
const mainRef = (s: string) => Promise.resolve(path.join(s, 'refs', 'heads', 'main'));
async function aCommit(s: string): Promise<string> {
  const id = (await fs.readFile(path.join(s, 'refs', 'heads', 'main'), 'utf8')).trim();
  return path.join(s, 'objects', 'meta', id.slice(0, 2), id.slice(2));
}

const toDir = (file: (s: string) => Promise<string>): Damage => async (s) => {
  const f = await file(s);
  await fs.rm(f, { recursive: true, force: true });
  await fs.mkdir(f);
};
const toFile = (rel: string): Damage => async (s) => {
  await fs.rm(path.join(s, rel), { recursive: true, force: true });
  await fs.writeFile(path.join(s, rel), 'not a folder\n');
};
const write = (file: (s: string) => Promise<string>, bytes: (old: Buffer) => Buffer | string): Damage => async (s) => {
  const f = await file(s);
  await fs.writeFile(f, bytes(await fs.readFile(f)));
};
const fifo = (file: (s: string) => Promise<string>): Damage => async (s) => {
  const f = await file(s);
  await fs.rm(f, { force: true });
  execFileSync('mkfifo', [f]);
};
const config = (s: string) => Promise.resolve(path.join(s, 'config'));
const head = (s: string) => Promise.resolve(path.join(s, 'HEAD'));
const patchConfig = (patch: Record<string, unknown>): Damage =>
  write(config, (old) => JSON.stringify({ ...(JSON.parse(old.toString('utf8')) as object), ...patch }));
const garbage = (old: Buffer) => Buffer.from(old.map((_, i) => (i * 7919 + 13) & 0xff));

const DAMAGES: Record<string, Damage> = {
  'pack is a folder': toDir(pack),
  'index is a folder': toDir(index),
  'ref is a folder': toDir(mainRef),
  'config is a folder': toDir(config),
  'HEAD is a folder': toDir(head),
  'tmp is a file': toFile('tmp'),
  'locks is a file': toFile('locks'),
  'objects is a file': toFile('objects'),
  'objects/meta is a file': toFile('objects/meta'),
  'refs is a file': toFile('refs'),
  'config empty': write(config, () => ''),
  'config truncated': write(config, (b) => b.subarray(0, b.length >> 1)),
  'config garbage': write(config, garbage),
  'config null': write(config, () => 'null'),
  'config an array': write(config, () => '[1,2]'),
  'config chunkSize 0': patchConfig({ chunkSize: 0 }),
  'config chunkSize -1': patchConfig({ chunkSize: -1 }),
  'config chunkSize huge': patchConfig({ chunkSize: 2 ** 40 }),
  'config chunkSize 1.5': patchConfig({ chunkSize: 1.5 }),
  'config chunkSize a string': patchConfig({ chunkSize: '1048576' }),
  'config compression wrong': patchConfig({ compression: { mode: 'zip', level: 99, maxDeltaChain: -3 } }),
  'config remotes wrong': patchConfig({ remotes: 5 }),
  'config unreadable': fifo(config),
  'HEAD escapes the store': write(head, () => 'ref: ../../../etc/passwd\n'),
  'HEAD empty': write(head, () => ''),
  'HEAD garbage': write(head, garbage),
  'HEAD unreadable': fifo(head),
  'ref empty': write(mainRef, () => ''),
  'ref garbage': write(mainRef, garbage),
  'ref unreadable': fifo(mainRef),
  'pack truncated': write(pack, (b) => b.subarray(0, b.length >> 1)),
  'pack empty': write(pack, () => ''),
  'pack unreadable': fifo(pack),
  'index truncated': write(index, (b) => b.subarray(0, b.length >> 1)),
  'index garbage': write(index, garbage),
  'index unreadable': fifo(index),
  'commit object truncated': write(aCommit, (b) => b.subarray(0, b.length >> 1)),
  'commit object unreadable': fifo(aCommit),
};

/** Read-only commands first, then the ones that may change the store when nothing stops them. */
const COMMANDS: string[][] = [
  ['log'],
  ['show', 'HEAD'],
  ['status'],
  ['diff', 'HEAD~1', 'HEAD'],
  ['du'],
  ['config'],
  ['remote', 'list'],
  ['fsck'],
  ['checkout', 'HEAD~1', '-o', 'restored.safetensors'],
  ['restore-code', 'HEAD', 'code-out'],
  ['branch', 'side'],
  ['tag', 'v2'],
  ['commit', 'm.safetensors', '-m', 'again', '--step', '3'],
  ['prune', '--keep-last', '1'],
  ['gc'],
  ['init'],
];

let pristine: string;
/** A command that has not answered in this long on a tiny store is hung. */
const RUN_TIMEOUT = 15_000;
const slot = limiter(3);

beforeAll(async () => {
  pristine = await tempDir('ckpt-damage-');
  await writeBigSafetensors(path.join(pristine, 'm.safetensors'), [
    { name: 'a', count: 3000, seed: 1 },
    { name: 'b', count: 3000, seed: 2 },
  ]);
  await ckptOk(pristine, 'init', '-q', '--chunk-size', '4096');
  await ckptOk(pristine, 'commit', 'm.safetensors', '-m', 'one', '--step', '1', '-q');
  await writeBigSafetensors(path.join(pristine, 'm.safetensors'), [
    { name: 'a', count: 3000, seed: 1 },
    { name: 'b', count: 3000, seed: 3 },
  ]);
  await ckptOk(pristine, 'commit', 'm.safetensors', '-m', 'two', '--step', '2', '-q');
  await ckptOk(pristine, 'tag', 'v1');
  await ckptOk(pristine, 'gc', '-q'); // one pack and one index: the damages below hit the only ones
});

afterAll(cleanupTempDirs);

/** Every command of COMMANDS run in order against a copy of the store with `damage` done to it. */
function runDamaged(damage: Damage): Promise<BatchRun[]> {
  return slot(async () => {
    const work = await tempDir('ckpt-damaged-');
    await fs.cp(pristine, work, { recursive: true });
    const store = path.join(work, '.ckpt');
    await damage(store);
    return runBatch(work, store, COMMANDS, RUN_TIMEOUT);
  });
}

const MUTATING = /^(branch|tag|commit|prune|gc|init)\b/;
/** Damage to the store as a whole: refused by every command that opens the store, as E_CORRUPT naming the file. */
const STORE_LEVEL = /^(config|HEAD|tmp|locks|objects|objects\/meta|refs) /;

describe.concurrent('every command against every damage of a store', () => {
  for (const [name, damage] of Object.entries(DAMAGES)) {
    it(name, async () => {
      const runs = await runDamaged(damage);
      const faults: string[] = [];
      for (const run of runs) {
        const cmd = run.argv.join(' ');
        const what = `ckpt ${cmd}: exit ${run.code}: ${run.stderr.trim().split('\n').slice(0, 3).join(' | ')}`;
        if (typeof run.code !== 'number' || run.code === 70) faults.push(what);
        else if (/^\s+at /m.test(run.stderr)) faults.push(`${what} (stack trace)`);
        else if (run.code !== 0 && !/^ckpt: error: /m.test(run.stderr)) faults.push(`${what} (no error line)`);
        else if (run.code !== 0 && !run.unchanged) faults.push(`${what} (failed and changed the store)`);
        else if (run.code === 0 && !MUTATING.test(cmd) && !run.unchanged) faults.push(`${what} (a read changed the store)`);
        if (cmd === 'fsck' && run.code === 0) faults.push(`ckpt fsck says OK: ${run.stdout.trim().slice(0, 200)}`);
        if (STORE_LEVEL.test(name) && cmd !== 'init' && (run.code !== 5 || !/\.ckpt[/\\]/.test(run.stderr))) {
          faults.push(`${what} (store-level damage must be E_CORRUPT, exit 5, naming the file)`);
        }
      }
      expect(faults).toEqual([]);
    }, 180_000);
  }
});
