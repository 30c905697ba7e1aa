/**
 * `ckpt clone`: a new store in an empty folder, `origin` pointing at the URL, a fetch, a local
 * branch at the remote's, and (unless asked not to) the branch's files written out. A clone that
 * fails removes what it created, so a retry starts clean.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { validateManifest } from '../core/validateMeta.js';
import { CkptError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { checkout, type CheckoutResult } from '../repo/checkout.js';
import { Repository } from '../repo/repository.js';
import { Store } from '../store/store.js';
import { defaultConfig } from '../store/storeConfig.js';
import { storeDirOf } from '../store/storeLocation.js';
import { fetchRemote, type FetchResult } from './fetch.js';
import { addRemote, openRemoteTransport, type LocalRemoteSettings } from './remoteConfig.js';
import type { Backend } from '../backend/backend.js';

export interface CloneOptions {
  branch?: string;
  noCheckout?: boolean;
  /** Metadata only; chunks are fetched by byte range when a checkout needs them. */
  partial?: boolean;
  region?: string;
  endpoint?: string;
  credentials?: LocalRemoteSettings;
  jobs?: number;
  onProgress?: (done: number, total: number) => void;
  /** Wraps the transport (byte counting in the CLI and tests). */
  wrap?: (t: Backend) => Backend;
}

export interface CloneResult {
  root: string;
  branch: string | undefined;
  head: ObjectId | null;
  fetch: FetchResult;
  checkout?: CheckoutResult;
}

/** Whether `dir` can become the clone: missing, or an empty folder. A file is refused. */
async function checkTarget(dir: string): Promise<'missing' | 'empty'> {
  const st = await fs.lstat(dir).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)));
  if (!st) return 'missing';
  if (!st.isDirectory()) throw new CkptError('E_EXISTS', `${dir} exists and is not a folder`, { dir });
  if ((await fs.readdir(dir)).length > 0) throw new CkptError('E_EXISTS', `${dir} exists and is not empty`, { dir });
  return 'empty';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Work folders of clones into `root` whose process is gone (killed midway): removed. */
async function removeDeadWorkDirs(root: string): Promise<void> {
  const parent = path.dirname(root);
  const prefix = `.${path.basename(root)}.clone-`;
  for (const name of await fs.readdir(parent).catch(() => [] as string[])) {
    const pid = name.startsWith(prefix) ? Number(/^(\d+)-[0-9a-f]+$/.exec(name.slice(prefix.length))?.[1]) : NaN;
    if (Number.isSafeInteger(pid) && !alive(pid)) await fs.rm(path.join(parent, name), { recursive: true, force: true });
  }
}

/** The folder a clone of `url` goes to when none is named: the URL's last path segment. */
export function cloneDirFor(url: string): string {
  const last = url.replace(/[/\\]+$/, '').split(/[/\\]/).pop() ?? '';
  const name = last.replace(/\.ckpt$/, '');
  if (!name || name === '.' || name === '..' || name.includes(':')) throw new UsageError(`cannot name a folder after ${url}; give one`);
  return name;
}

/**
 * The clone is built in a work folder beside the target and renamed into place at the end, so
 * a clone killed midway leaves no half-made target, and the next run (which removes work
 * folders of dead clones) starts clean.
 */
export async function clone(url: string, dir: string, opts: CloneOptions = {}): Promise<CloneResult> {
  const root = path.resolve(dir);
  await checkTarget(root);
  await fs.mkdir(path.dirname(root), { recursive: true });
  await removeDeadWorkDirs(root);
  const work = path.join(path.dirname(root), `.${path.basename(root)}.clone-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fs.mkdir(work);
  let t: Backend | undefined;
  try {
    await Store.create(storeDirOf(work), defaultConfig());
    const repo = await Repository.open(work);
    // a relative path names a folder relative to where clone ran, not inside the new clone
    const remoteUrl = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url) ? url : path.resolve(url);
    const settings = { ...(opts.credentials ?? {}), ...(opts.partial ? { partial: true } : {}) };
    await addRemote(repo, 'origin', { url: remoteUrl, region: opts.region, endpoint: opts.endpoint }, settings);
    const raw = await openRemoteTransport({ url: remoteUrl, region: opts.region, endpoint: opts.endpoint, ...settings }, work);
    t = opts.wrap ? opts.wrap(raw) : raw;
    const fetched = await fetchRemote(repo, t, { remoteName: 'origin', jobs: opts.jobs, metadataOnly: opts.partial, onProgress: opts.onProgress });
    const heads = Object.keys(fetched.refs).filter((r) => r.startsWith('refs/heads/')).map((r) => r.slice(11));
    const branch = opts.branch ?? (heads.includes('main') ? 'main' : heads.sort()[0]);
    const result: CloneResult = { root, branch, head: null, fetch: fetched };
    if (opts.branch && !heads.includes(opts.branch)) throw new CkptError('E_NOT_FOUND', `${url} has no branch ${opts.branch}`, { branch: opts.branch });
    if (branch) {
      const head = fetched.refs[`refs/heads/${branch}`];
      await repo.store.refs.cas(`refs/heads/${branch}`, null, head, `clone ${url}`);
      await repo.store.refs.writeHead({ kind: 'branch', ref: `refs/heads/${branch}` });
      result.head = head;
      await adoptChunkSize(repo, head);
      if (!opts.noCheckout && !opts.partial) result.checkout = await checkout(repo, 'HEAD');
    }
    if ((await checkTarget(root)) === 'empty') await fs.rmdir(root);
    await fs.rename(work, root);
    for (const f of result.checkout?.files ?? []) f.output = path.join(root, path.relative(work, f.output));
    return result;
  } catch (e) {
    await t?.close?.().catch(() => undefined);
    t = undefined;
    await fs.rm(work, { recursive: true, force: true });
    throw e;
  } finally {
    await t?.close?.();
  }
}

/** New commits in the clone chunk tensors as the remote's did, so they deduplicate against it. */
async function adoptChunkSize(repo: Repository, head: ObjectId): Promise<void> {
  const tree = await repo.readTree((await repo.readCommit(head)).tree);
  const first = Object.values(tree.files)[0];
  if (!first) return;
  // a setting taken from a stranger: checked like the store's own (validateMeta.ts)
  const { chunkSize } = validateManifest(first.manifest, await repo.readManifest(first.manifest), 'the cloned branch');
  if (chunkSize !== repo.store.config.chunkSize) {
    repo.store.config.chunkSize = chunkSize;
    await repo.store.saveConfig();
  }
}
