/**
 * Named remotes: the URL, region and endpoint live in `.ckpt/config` (shared with the team
 * through Git); credentials and per-machine choices live in `.ckpt/config.local` (git-ignored)
 * and are never written to the shared file. Without stored credentials, HTTP uses $CKPT_TOKEN and
 * S3 the SDK's standard chain (environment, profile, SSO, instance role).
 */
import { CkptError, NotFoundError, UsageError } from '../core/errors.js';
import type { Repository } from '../repo/repository.js';
import type { RemoteConfig } from '../store/storeConfig.js';
import { openBackend } from '../backend/openBackend.js';
import type { Backend } from '../backend/backend.js';

/** What `.ckpt/config.local` may hold for one remote. */
export interface LocalRemoteSettings {
  /** Bearer token for `ckpt serve`. */
  token?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** A partial clone: chunks are fetched on demand, by byte range. */
  partial?: boolean;
}

export interface LocalConfig {
  remotes?: Record<string, LocalRemoteSettings>;
  [other: string]: unknown;
}

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

export function checkRemoteName(name: string): string {
  if (!NAME_RE.test(name) || name.endsWith('.lock')) throw new UsageError(`invalid remote name ${JSON.stringify(name)}`);
  return name;
}

export async function readLocalConfig(repo: Repository): Promise<LocalConfig> {
  return (await repo.store.readLocalConfig()) as LocalConfig;
}

async function updateLocalSettings(repo: Repository, name: string, settings: LocalRemoteSettings | undefined): Promise<void> {
  const cfg = await readLocalConfig(repo);
  const remotes = { ...(cfg.remotes ?? {}) };
  if (settings && Object.keys(settings).length > 0) remotes[name] = { ...(remotes[name] ?? {}), ...settings };
  else delete remotes[name];
  // it holds credentials: created readable by the owner only, in the same step that creates it
  await repo.store.writeLocalConfig({ ...cfg, remotes });
}

export async function addRemote(
  repo: Repository,
  name: string,
  remote: RemoteConfig,
  local: LocalRemoteSettings = {},
): Promise<void> {
  checkRemoteName(name);
  if (repo.store.config.remotes[name]) throw new CkptError('E_EXISTS', `remote ${name} already exists`, { name });
  if (!remote.url) throw new UsageError('a remote needs a URL');
  await openBackend(remote.url, { cwd: repo.root }); // refuses an unsupported URL before it is saved
  const clean: RemoteConfig = { url: remote.url };
  if (remote.region) clean.region = remote.region;
  if (remote.endpoint) clean.endpoint = remote.endpoint;
  repo.store.config.remotes = { ...repo.store.config.remotes, [name]: clean };
  await repo.store.saveConfig();
  const settings = Object.fromEntries(Object.entries(local).filter(([, v]) => v !== undefined)) as LocalRemoteSettings;
  if (Object.keys(settings).length > 0) await updateLocalSettings(repo, name, settings);
}

/** Removes the remote, its credentials and its remote-tracking refs. */
export async function removeRemote(repo: Repository, name: string): Promise<void> {
  if (!repo.store.config.remotes[name]) throw new NotFoundError(`remote ${name}`, { name });
  const { [name]: _gone, ...rest } = repo.store.config.remotes;
  repo.store.config.remotes = rest;
  await repo.store.saveConfig();
  if ((await readLocalConfig(repo)).remotes?.[name]) await updateLocalSettings(repo, name, undefined);
  for (const [ref, id] of await repo.store.refs.list(`refs/remotes/${name}/`)) await repo.store.refs.cas(ref, id, null, `remote remove ${name}`);
}

export function listRemotes(repo: Repository): { name: string; url: string; region?: string; endpoint?: string }[] {
  return Object.entries(repo.store.config.remotes)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, r]) => ({ name, ...r }));
}

export interface TransportSettings extends RemoteConfig, LocalRemoteSettings {}

/** Opens a transport for a URL with the given settings; relative paths resolve against `cwd`. */
export function openRemoteTransport(s: TransportSettings, cwd: string): Promise<Backend> {
  const token = s.token ?? process.env.CKPT_TOKEN;
  const credentials =
    s.accessKeyId && s.secretAccessKey
      ? { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey, ...(s.sessionToken ? { sessionToken: s.sessionToken } : {}) }
      : undefined;
  return openBackend(s.url, {
    cwd,
    http: token ? { token } : {},
    s3: { region: s.region, endpoint: s.endpoint, credentials },
  });
}

export interface OpenedRemote {
  /** The configured name; undefined for a bare URL (no remote-tracking refs then). */
  name: string | undefined;
  settings: TransportSettings;
  transport: Backend;
}

/** A configured remote by name, or a URL/path used directly. */
export async function openRemote(repo: Repository, nameOrUrl: string): Promise<OpenedRemote> {
  const cfg = repo.store.config.remotes[nameOrUrl];
  if (cfg) {
    const settings = { ...cfg, ...((await readLocalConfig(repo)).remotes?.[nameOrUrl] ?? {}) };
    return { name: nameOrUrl, settings, transport: await openRemoteTransport(settings, repo.root) };
  }
  if (NAME_RE.test(nameOrUrl) && !nameOrUrl.includes('.') && !nameOrUrl.includes('/')) {
    throw new NotFoundError(`remote ${nameOrUrl} (see \`ckpt remote list\`)`, { remote: nameOrUrl });
  }
  const settings = { url: nameOrUrl };
  return { name: undefined, settings, transport: await openRemoteTransport(settings, repo.root) };
}

/** The remote a command uses when none is named: the only one, else `origin`. */
export function defaultRemote(repo: Repository): string {
  const names = Object.keys(repo.store.config.remotes);
  if (names.length === 1) return names[0];
  if (names.includes('origin')) return 'origin';
  throw new UsageError(names.length === 0 ? 'no remote configured (ckpt remote add NAME URL)' : `several remotes (${names.join(', ')}); name one`);
}
