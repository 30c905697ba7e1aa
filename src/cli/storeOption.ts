/**
 * `ckpt --store <url|path>` (or $CKPT_STORE): a command runs against a store that is not the work
 * tree's own `.ckpt/`. The work tree stays the current folder's (Git provenance, tree paths).
 *
 *   a path or file://        that folder's store (a bare store, or <dir>/.ckpt), opened as a local one
 *   http(s)://host:port/name  a store served by `ckpt serve`
 *   s3://bucket/prefix        an S3 prefix
 *   a remote's name           that remote of the work tree's store, with its saved credentials
 *
 * A store elsewhere is read through a local cache of its index files and metadata objects
 * (src/backend/objectCache.ts) in $CKPT_CACHE_DIR (default $XDG_CACHE_HOME/ckpt, else
 * ~/.cache/ckpt), one folder per store, bounded by $CKPT_CACHE_SIZE (default 512 MiB); pack bytes
 * are read by range, never cached. Packs being written before upload and other temporary files go
 * in a scratch folder of the run under the store's cache folder, removed when the command ends
 * (and, left by a run that was killed, by a later run).
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CkptError, UsageError } from '../core/errors.js';
import type { Backend } from '../backend/backend.js';
import { CachingBackend } from '../backend/cachingBackend.js';
import { resolveStoreDir } from '../backend/localBackend.js';
import { ObjectCache } from '../backend/objectCache.js';
import { Repository, type RepositoryOptions } from '../repo/repository.js';
import { findWorkTree } from '../store/storeLocation.js';
import { Store } from '../store/store.js';
import { defaultConfig, validateChunkSize } from '../store/storeConfig.js';
import { openRemoteTransport, readLocalConfig, type TransportSettings } from '../sync/remoteConfig.js';
import type { CliIo } from './output.js';
import { isFolderSpec, type StoreArg } from './context.js';

export const DEFAULT_CACHE_BYTES = 512 * 1024 * 1024;

/** What openStoreRepo needs of a run. */
export interface StoreRun {
  io: CliIo;
  /** Called with what to do once the command has ended, whatever the outcome. */
  atEnd(fn: () => Promise<void>): void;
}

export interface StoreOpenOptions extends RepositoryOptions {
  /** Index and metadata reads go to the store itself, not the cache (fsck checks what the store holds). */
  uncached?: boolean;
  /** The command works on a folder store's remotes (push, fetch, pull, remote): a store elsewhere is refused, naming it. */
  folderOnly?: string;
}

/** The cache's root: $CKPT_CACHE_DIR, else $XDG_CACHE_HOME/ckpt, else ~/.cache/ckpt. */
export function cacheRootOf(env: CliIo['env'], cwd: string): string {
  if (env.CKPT_CACHE_DIR) return path.resolve(cwd, env.CKPT_CACHE_DIR);
  if (env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME)) return path.join(env.XDG_CACHE_HOME, 'ckpt');
  return path.join(env.HOME || os.homedir(), '.cache', 'ckpt');
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** A size like 512M, 2GiB, 1.5g or 1048576 (bytes); binary units. */
export function parseByteSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  const n = m ? Math.floor(Number(m[1]) * UNITS[m[2].toLowerCase()]) : NaN;
  if (!Number.isSafeInteger(n) || n < 0) throw new UsageError(`${what} expects a size such as 512M or 2G, got ${JSON.stringify(text)}`);
  return n;
}

/** The cache's byte budget: $CKPT_CACHE_SIZE, default 512 MiB. */
export function cacheBytesOf(env: CliIo['env']): number {
  return env.CKPT_CACHE_SIZE ? parseByteSize(env.CKPT_CACHE_SIZE, '$CKPT_CACHE_SIZE') : DEFAULT_CACHE_BYTES;
}

/**
 * Where `spec` points and how to reach it: a remote of the work tree's store named `spec`, or
 * whose URL is `spec`, with its saved credentials (a folder remote's relative path taken from the
 * work tree, as the remote commands take it); else `spec` itself. Credentials not saved come from
 * the environment: $CKPT_TOKEN; $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN,
 * $AWS_REGION, $AWS_ENDPOINT_URL_S3 or $AWS_ENDPOINT_URL (without keys, the AWS SDK's own chain).
 */
async function resolveSpec(spec: string, cwd: string, env: CliIo['env']): Promise<{ settings: TransportSettings; base: string }> {
  const clean = (s: TransportSettings) => Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined && v !== '')) as TransportSettings;
  const fromEnv = clean({
    url: spec,
    token: env.CKPT_TOKEN,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION,
    endpoint: env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL,
    accessKeyId: env.AWS_ACCESS_KEY_ID,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
    sessionToken: env.AWS_SESSION_TOKEN,
  });
  if (!(await findWorkTree(cwd))) return { settings: fromEnv, base: cwd };
  let local: Repository;
  try {
    local = await Repository.open(cwd);
  } catch {
    return { settings: fromEnv, base: cwd }; // a damaged work-tree store does not stand in the way of another store
  }
  const remotes = local.store.config.remotes;
  const name = Object.hasOwn(remotes, spec) ? spec : Object.keys(remotes).find((n) => remotes[n].url === spec);
  if (name === undefined) return { settings: fromEnv, base: cwd };
  const saved = (await readLocalConfig(local)).remotes?.[name] ?? {};
  return { settings: { ...fromEnv, ...clean({ ...remotes[name], ...saved } as TransportSettings) }, base: local.root };
}

/** The folder a path or file:// URL names: the store itself, or the `.ckpt` inside it. */
function folderOf(url: string, base: string): Promise<string> {
  return resolveStoreDir(url.toLowerCase().startsWith('file:') ? url : path.resolve(base, url));
}

/** The store's folder under the cache root: a hash of where the store is. */
function storeCacheDir(root: string, url: string, endpoint: string | undefined): string {
  return path.join(root, createHash('sha256').update(`${url}\n${endpoint ?? ''}`).digest('hex').slice(0, 32));
}

const HOST = os.hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'host';

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Scratch folders a week old are abandoned whoever made them (another host sharing the cache). */
const ABANDONED_MS = 7 * 24 * 3600 * 1000;

/**
 * A fresh scratch folder for this run under the store's cache folder; scratch folders of runs
 * of this host that no longer run (killed mid-command) go first.
 */
async function newScratch(cacheDir: string): Promise<string> {
  const base = path.join(cacheDir, 'scratch');
  for (const name of await fs.readdir(base).catch(() => [] as string[])) {
    const m = /^(.+)\.(\d+)\.[0-9a-f]+$/.exec(name);
    const p = path.join(base, name);
    const gone = m && m[1] === HOST ? !running(Number(m[2])) : Date.now() - ((await fs.stat(p).catch(() => undefined))?.mtimeMs ?? Date.now()) > ABANDONED_MS;
    if (gone) await fs.rm(p, { recursive: true, force: true }).catch(() => undefined);
  }
  const dir = path.join(base, `${HOST}.${process.pid}.${randomBytes(4).toString('hex')}`);
  await fs.mkdir(dir, { recursive: true });
  return dir;
}

/** The store elsewhere `settings` name, opened with its cache and this run's scratch folder. */
async function openElsewhere(run: StoreRun, settings: TransportSettings, cwd: string, uncached: boolean): Promise<{ backend: Backend; scratch: string }> {
  const inner = await openRemoteTransport(settings, cwd);
  run.atEnd(async () => {
    await inner.close?.();
  });
  const root = cacheRootOf(run.io.env, cwd);
  const cacheDir = storeCacheDir(root, inner.url, settings.endpoint);
  const maxBytes = cacheBytesOf(run.io.env);
  let scratch: string;
  try {
    scratch = await newScratch(cacheDir);
    // which store a cache folder belongs to, for a person looking at the cache
    await fs.writeFile(path.join(cacheDir, 'store-url'), `${inner.url}\n`, { flag: 'wx' }).catch(() => undefined);
  } catch (e) {
    throw new CkptError('E_IO', `cannot create the cache folder ${cacheDir} for ${inner.url}: ${(e as Error).message} (set $CKPT_CACHE_DIR)`, { dir: cacheDir });
  }
  run.atEnd(() => fs.rm(scratch, { recursive: true, force: true }));
  const backend = uncached ? inner : new CachingBackend(inner, new ObjectCache({ root, dir: cacheDir, maxBytes }));
  return { backend, scratch };
}

/** The repository of the current work tree with the store `arg` names. */
export async function openStoreRepo(run: StoreRun, arg: StoreArg, cwd: string, opts: StoreOpenOptions = {}): Promise<Repository> {
  const { settings, base } = await resolveSpec(arg.spec, cwd, run.io.env);
  if (isFolderSpec(settings.url)) return Repository.withStore(cwd, await Store.open(await folderOf(settings.url, base), opts), opts);
  if (opts.folderOnly) {
    throw new UsageError(
      `ckpt ${opts.folderOnly} does not run against a store elsewhere (${arg.from} ${arg.spec}): it copies between a store in a folder and that store's remotes; run it where the store is a folder`,
    );
  }
  const { backend, scratch } = await openElsewhere(run, settings, cwd, opts.uncached ?? false);
  return Repository.withStore(cwd, await Store.openBackend(backend, scratch, opts), opts);
}

/** `ckpt --store URL init`: a new, empty store at `arg` (a folder is created; elsewhere, config and HEAD are written). */
export async function initStoreRepo(run: StoreRun, arg: StoreArg, cwd: string, opts: RepositoryOptions & { chunkSize?: number } = {}): Promise<Repository> {
  const config = defaultConfig(validateChunkSize(opts.chunkSize ?? defaultConfig().chunkSize));
  const { settings, base } = await resolveSpec(arg.spec, cwd, run.io.env);
  if (isFolderSpec(settings.url)) return Repository.withStore(cwd, await Store.create(await folderOf(settings.url, base), config, opts), opts);
  const { backend, scratch } = await openElsewhere(run, settings, cwd, false);
  return Repository.withStore(cwd, await Store.createOn(backend, scratch, config, opts), opts);
}
