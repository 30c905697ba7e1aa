/**
 * `ckpt clone`: a new store in an empty folder, `origin` pointing at the URL, a fetch, a local
 * branch at the remote's, and (unless asked not to) the branch's files written out. A clone that
 * fails removes what it created, so a retry starts clean.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { checkout, type CheckoutResult } from '../repo/checkout.js';
import { Repository } from '../repo/repository.js';
import { Store } from '../store/store.js';
import { defaultConfig } from '../store/storeConfig.js';
import { fetchRemote, type FetchResult } from './fetch.js';
import { addRemote, openRemoteTransport, type LocalRemoteSettings } from './remoteConfig.js';
import type { Transport } from './transport.js';

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
  wrap?: (t: Transport) => Transport;
}

export interface CloneResult {
  root: string;
  branch: string | undefined;
  head: ObjectId | null;
  fetch: FetchResult;
  checkout?: CheckoutResult;
}

async function isEmptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await fs.readdir(dir)).length === 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
}

/** The folder a clone of `url` goes to when none is named: the URL's last path segment. */
export function cloneDirFor(url: string): string {
  const last = url.replace(/[/\\]+$/, '').split(/[/\\]/).pop() ?? '';
  const name = last.replace(/\.ckpt$/, '');
  if (!name || name === '.' || name === '..' || name.includes(':')) throw new UsageError(`cannot name a folder after ${url}; give one`);
  return name;
}

export async function clone(url: string, dir: string, opts: CloneOptions = {}): Promise<CloneResult> {
  const root = path.resolve(dir);
  if (!(await isEmptyOrMissing(root))) throw new CkptError('E_EXISTS', `${root} exists and is not empty`, { dir: root });
  const created = !(await fs.stat(root).then(() => true, () => false));
  await fs.mkdir(root, { recursive: true });
  let t: Transport | undefined;
  try {
    await Store.create(path.join(root, '.ckpt'), defaultConfig());
    const repo = await Repository.open(root);
    // a relative path names a folder relative to where clone ran, not inside the new clone
    const remoteUrl = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(url) ? url : path.resolve(url);
    const settings = { ...(opts.credentials ?? {}), ...(opts.partial ? { partial: true } : {}) };
    await addRemote(repo, 'origin', { url: remoteUrl, region: opts.region, endpoint: opts.endpoint }, settings);
    const raw = await openRemoteTransport({ url: remoteUrl, region: opts.region, endpoint: opts.endpoint, ...settings }, root);
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
    return result;
  } catch (e) {
    await t?.close?.().catch(() => undefined);
    t = undefined;
    if (created) await fs.rm(root, { recursive: true, force: true });
    else await fs.rm(path.join(root, '.ckpt'), { recursive: true, force: true });
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
  const { chunkSize } = await repo.readManifest(first.manifest);
  if (chunkSize && chunkSize !== repo.store.config.chunkSize) {
    repo.store.config.chunkSize = chunkSize;
    await repo.store.saveConfig();
  }
}
