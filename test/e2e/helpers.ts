/**
 * Shared pieces of the end-to-end tests: the real CLI run in process (`ckpt`, `ckptOk`,
 * `ckptJson`) or as a child process when a test needs one (`start`: kill, crash, race), scratch
 * directories, store snapshots, hashes computed independently of ckpt, seeded data and the
 * fixture lists.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync } from 'node:fs';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeSafetensorsHeader } from '../../src/formats/safetensors.js';
import { mulberry32 } from '../../src/core/seededRandom.js';
import { ckptIn, testEnv } from './inProcess.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = path.join(ROOT, 'bin', 'ckpt');
export const FIXTURES = path.join(ROOT, 'fixtures');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  done: Promise<RunResult>;
}

/**
 * Starts `bin/ckpt args...` as a child process in `cwd` without waiting, so a test can race or
 * kill it.
 */
export function start(cwd: string, args: string[], env: NodeJS.ProcessEnv = {}): Running {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: testEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }),
    );
  });
  return { child, done };
}

/** Runs `ckpt args...` in `cwd`, in process (`main` with captured streams). */
export function ckpt(cwd: string, ...args: string[]): Promise<RunResult> {
  return ckptIn(cwd, ...args);
}

function describeRun(args: string[], r: RunResult): string {
  return `ckpt ${args.join(' ')} exited ${r.code ?? r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Runs a command that must succeed; returns its stdout. */
export async function ckptOk(cwd: string, ...args: string[]): Promise<string> {
  const r = await ckpt(cwd, ...args);
  if (r.code !== 0) throw new Error(describeRun(args, r));
  return r.stdout;
}

/** Runs a command with --json that must succeed; stdout must be one JSON document and nothing else. */
export async function ckptJson<T = any>(cwd: string, ...args: string[]): Promise<T> {
  const all = [...args, '--json'];
  const r = await ckpt(cwd, ...all);
  if (r.code !== 0) throw new Error(describeRun(all, r));
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`stdout of ckpt ${all.join(' ')} is not one JSON document:\n${r.stdout}`);
  }
}

const scratch: string[] = [];

/** A fresh directory under the OS temp dir, removed by `cleanupTempDirs`. */
export async function tempDir(prefix = 'ckpt-e2e-'): Promise<string> {
  const d = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), prefix)));
  scratch.push(d);
  return d;
}

export async function cleanupTempDirs(): Promise<void> {
  for (const d of scratch.splice(0)) await fs.rm(d, { recursive: true, force: true });
}

/** A work tree with an initialised store. */
export async function newRepo(...initArgs: string[]): Promise<string> {
  const dir = await tempDir();
  await ckptOk(dir, 'init', ...initArgs);
  return dir;
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const b of createReadStream(file, { highWaterMark: 8 << 20 })) h.update(b as Buffer);
  return h.digest('hex');
}

export const HAVE_B3SUM = spawnSync('b3sum', ['--version']).status === 0;

/** BLAKE3 of a file as the reference `b3sum` prints it (undefined when b3sum is not installed). */
export function b3sum(file: string): string | undefined {
  if (!HAVE_B3SUM) return undefined;
  const r = spawnSync('b3sum', ['--no-names', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`b3sum ${file}: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * Every file and directory under `dir`: relative path -> sha256 of the bytes, or 'dir'. Two equal
 * snapshots mean nothing was added, removed or rewritten, including empty tmp/ or lock files.
 */
export async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const e of (await fs.readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        out[`${r}/`] = 'dir';
        await walk(r);
      } else {
        out[r] = createHash('sha256').update(await fs.readFile(path.join(dir, r))).digest('hex');
      }
    }
  };
  await walk('');
  return out;
}

/** Total bytes of the regular files directly in `dir` (the packs folder). */
export async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir)) n += (await fs.stat(path.join(dir, e))).size;
  return n;
}


/** Deterministic 32-bit PRNG: reproducible "random" tensors and kill delays. */
export const prng = mulberry32;

/**
 * `count` float32 values shaped like trained weights (small, centred on zero) from a seed, as
 * bytes. Realistic exponents matter: they are what the codec compresses.
 */
export function randomF32(seed: number, count: number): Uint8Array {
  const next = prng(seed);
  const f = new Float32Array(count);
  for (let i = 0; i < count; i++) f[i] = ((next() / 0x1_0000_0000) * 2 - 1) * 0.05;
  return new Uint8Array(f.buffer);
}

export interface BigTensor {
  name: string;
  /** float32 elements */
  count: number;
  seed: number;
}

/**
 * Writes an F32 safetensors file tensor by tensor: only one tensor's bytes are in memory at a
 * time, whatever the file size.
 */
export async function writeBigSafetensors(file: string, tensors: readonly BigTensor[]): Promise<{ dataStart: number; offsets: number[] }> {
  const header = encodeSafetensorsHeader(tensors.map((t) => ({ name: t.name, dtype: 'F32', shape: [t.count], length: t.count * 4 })));
  const fh = await fs.open(file, 'w');
  const offsets: number[] = [];
  try {
    await fh.write(header);
    let pos = header.length;
    for (const t of tensors) {
      offsets.push(pos);
      await fh.write(randomF32(t.seed, t.count), 0, t.count * 4, pos);
      pos += t.count * 4;
    }
  } finally {
    await fh.close();
  }
  return { dataStart: header.length, offsets };
}

export interface Listed {
  name: string;
  dtype: string;
  shape: number[];
  blake3: string;
}

const CHECKPOINT_EXT = /\.(safetensors|pt|pth|bin|ckpt|npy|npz|gguf)$/;

/** The valid fixtures of every format folder: files with a checkpoint extension, skipping bad/ and unsafe/. */
export function validFixtures(): { format: string; file: string; listing: string | undefined }[] {
  const out: { format: string; file: string; listing: string | undefined }[] = [];
  for (const folder of readdirSync(FIXTURES, { withFileTypes: true })) {
    if (!folder.isDirectory()) continue;
    const dir = path.join(FIXTURES, folder.name);
    for (const name of readdirSync(dir).sort()) {
      if (!CHECKPOINT_EXT.test(name)) continue;
      const file = path.join(dir, name);
      const listing = file.replace(CHECKPOINT_EXT, '.json');
      out.push({ format: folder.name, file, listing: existsSync(listing) ? listing : undefined });
    }
  }
  return out;
}

export interface BadCase {
  file: string;
  pattern: RegExp;
}

/** Every file of every fixtures/<format>/bad/ folder with the fault its error must match. */
export function badFixtures(): { format: string; cases: BadCase[]; unlisted: string[] }[] {
  const out: { format: string; cases: BadCase[]; unlisted: string[] }[] = [];
  for (const folder of readdirSync(FIXTURES).sort()) {
    const dir = path.join(FIXTURES, folder, 'bad');
    if (!existsSync(path.join(dir, 'faults.json'))) continue;
    const faults = JSON.parse(readFileSync(path.join(dir, 'faults.json'), 'utf8')) as Record<string, string | { pattern: string }>;
    const cases: BadCase[] = [];
    const unlisted: string[] = [];
    for (const name of readdirSync(dir).sort()) {
      if (name === 'faults.json') continue;
      const f = faults[name];
      if (f === undefined) unlisted.push(name);
      else cases.push({ file: path.join(dir, name), pattern: new RegExp(typeof f === 'string' ? f : f.pattern, 'i') });
    }
    out.push({ format: folder, cases, unlisted });
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
