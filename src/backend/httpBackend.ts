/**
 * A store served by storeServer (`ckpt serve`), over node:http(s) rather than fetch: request
 * bodies stream from disk with a known Content-Length, and paths go out exactly as built. Each
 * operation is one request (a ranged reader: one per range, over a keep-alive connection); a
 * cut connection, a 5xx or a stall is marked transient and retried by retryingBackend.ts, not
 * here. The store's locks are leases the server holds on the client's behalf (storeLeases.ts),
 * renewed while held.
 */
import { createReadStream, promises as fs } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Readable } from 'node:stream';
import { CkptError, CorruptObjectError, NotFoundError, RefConflictError, UsageError } from '../core/errors.js';
import { isObjectId } from '../core/objectId.js';
import { parseKey } from './objectKeys.js';
import {
  checkRange,
  decodeRef,
  deletableKey,
  encodeRef,
  isListableKey,
  isNetworkFault,
  listPrefix,
  maxStoreFileBytes,
  objectKey,
  readableKey,
  refConflict,
  refName,
  remoteError,
  statableKey,
  storeFileKey,
  streamToVerifiedFile,
  transientError,
  verifyBytes,
  writableStoreFileKey,
  maxResponseBytes,
  REF_OBJECT_MAX,
  SMALL_OBJECT_MAX,
  type GetToFileOptions,
  type KeyInfo,
  type PutBody,
  type RangeReader,
  type RefLogEntry,
  type RemoteLock,
  type Backend,
} from './backend.js';
import { renewedLock } from './renewedLock.js';
import { waitNotifier } from './lockFile.js';
import { clientLimits, guardStream, type StallLimits } from './stallGuard.js';

export interface HttpBackendOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** A connection silent this long is dropped (a transient failure); default the stall timeout. */
  idleTimeoutMs?: number;
  /** No progress for this long ends a transfer (default $CKPT_STALL_TIMEOUT or 60 s). */
  stallMs?: number;
  /** One request, body included, ends by then (default $CKPT_DEADLINE or 6 h). */
  deadlineMs?: number;
  /**
   * How long lockShared waits while gc holds the store (default $CKPT_LOCK_WAIT seconds or
   * 30 min) and lockExclusive waits for commits and pushes to finish (default 10 min).
   */
  lockWaitMs?: number;
}

type Body = Uint8Array | (() => Readable);

interface Attempt {
  method: string;
  /** Path relative to the repository: a key, or `?list=...`. */
  path: string;
  headers?: Record<string, string | number>;
  body?: Body;
}

/** The header that carries a ref update's reflog entry: `<time ms> <reason, percent-encoded>`. */
export const REFLOG_HEADER = 'ckpt-reflog';
/** A resumed pack upload starts at this byte (request); bytes kept of an interrupted one (answer to HEAD <key>?partial). */
export const UPLOAD_OFFSET = 'upload-offset';
/** Longest reflog reason sent, in characters (a reason is one line: a commit's subject). */
const REASON_MAX = 1000;

const ERROR_MAX = 64 * 1024;

function contentLength(res: http.IncomingMessage): number | undefined {
  const h = res.headers['content-length'];
  if (h === undefined) return undefined;
  const n = Number(h);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sharedLockWaitMs(): number {
  const s = Number(process.env.CKPT_LOCK_WAIT ?? 1800);
  return (Number.isFinite(s) && s >= 0 ? s : 1800) * 1000;
}

/** The header value of a reflog entry. */
export function reflogHeader(log: RefLogEntry): string {
  const reason = Array.from(log.reason.replace(/\s+/g, ' ')).slice(0, REASON_MAX).join('');
  return `${Math.max(0, Math.floor(log.time))} ${encodeURIComponent(reason)}`;
}

interface LeaseAnswer {
  lease: string;
  ttlMs: number;
  /** Exclusive leases: whether every shared lock is gone; absent from servers without exclusive leases. */
  granted?: boolean;
}

function parseLeaseAnswer(url: string, body: Buffer): LeaseAnswer {
  let v: { lease?: unknown; ttlMs?: unknown; granted?: unknown };
  try {
    v = JSON.parse(body.toString('utf8')) as typeof v;
  } catch {
    throw remoteError(url, 'malformed lease answer');
  }
  if (typeof v?.lease !== 'string' || !/^[0-9a-f]{32}$/.test(v.lease) || !Number.isSafeInteger(v.ttlMs) || (v.ttlMs as number) < 100) {
    throw remoteError(url, 'malformed lease answer');
  }
  return { lease: v.lease, ttlMs: v.ttlMs as number, granted: typeof v.granted === 'boolean' ? v.granted : undefined };
}

export class HttpBackend implements Backend {
  readonly url: string;
  private readonly base: URL;
  private readonly basePath: string;
  private readonly agent: http.Agent;
  private readonly client: typeof http | typeof https;
  private readonly limits: StallLimits;

  constructor(
    url: string,
    private readonly options: HttpBackendOptions = {},
  ) {
    try {
      this.base = new URL(url);
    } catch {
      throw new UsageError(`not a valid URL: ${url}`);
    }
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new UsageError(`not an http(s) URL: ${url}`);
    }
    if (this.base.search || this.base.hash) throw new UsageError(`a remote URL takes no query or fragment: ${url}`);
    this.basePath = this.base.pathname.replace(/\/+$/, '');
    if (this.basePath === '') throw new UsageError(`the URL must name a repository: ${url}/<repo>`);
    this.url = `${this.base.origin}${this.basePath}`;
    this.client = this.base.protocol === 'https:' ? https : http;
    this.agent = new this.client.Agent({ keepAlive: true, maxSockets: 16 });
    this.limits = clientLimits({ stallMs: options.stallMs, deadlineMs: options.deadlineMs });
  }

  /** A response under the stall guard: at most `max` bytes, exactly `exact` when given. */
  private guarded(res: http.IncomingMessage, max: number, what: string, exact?: number): AsyncGenerator<Uint8Array> {
    return guardStream(res, { ...this.limits, max, expected: exact, declared: contentLength(res), what: `${this.url}: ${what}` });
  }

  private async readAll(res: http.IncomingMessage, max: number, what: string, exact?: number): Promise<Buffer> {
    const parts: Uint8Array[] = [];
    for await (const c of this.guarded(res, max, what, exact)) parts.push(c);
    return Buffer.concat(parts);
  }

  /** One request; resolves with the response whatever its status, unread. */
  private attempt({ method, path, headers = {}, body }: Attempt): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const h: Record<string, string | number> = { ...headers };
      if (this.options.token !== undefined) h.Authorization = `Bearer ${this.options.token}`;
      if (body instanceof Uint8Array) h['Content-Length'] = body.byteLength;
      const req = this.client.request(
        {
          protocol: this.base.protocol,
          hostname: this.base.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: this.base.port || undefined,
          method,
          path: `${this.basePath}/${path}`,
          headers: h,
          agent: this.agent,
        },
        resolve,
      );
      req.setTimeout(this.options.idleTimeoutMs ?? this.limits.stallMs, () => {
        req.destroy(Object.assign(new Error(`no answer from ${this.url}`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', reject);
      // once the request is sent, the answer's head must come within the stall timeout
      req.on('finish', () => {
        const wait = setTimeout(() => {
          req.destroy(Object.assign(new Error(`no answer from ${this.url} within ${this.limits.stallMs} ms`), { code: 'ETIMEDOUT' }));
        }, this.limits.stallMs);
        wait.unref();
        req.once('response', () => clearTimeout(wait));
        req.once('close', () => clearTimeout(wait));
      });
      if (body === undefined) {
        req.end();
      } else if (body instanceof Uint8Array) {
        req.end(body);
      } else {
        const src = body();
        src.on('error', (e) => req.destroy(e));
        // a server that answers early (401, 413) stops reading: release the file too
        req.on('close', () => src.destroy());
        src.pipe(req);
      }
    });
  }

  /**
   * Sends one request and turns error statuses into typed errors; `use` consumes a successful
   * response. A cut or refused connection, a 5xx and a body cut mid-way are transient
   * (retryingBackend.ts retries them); a stall is a StallError, transient too.
   */
  private async request<T>(a: Attempt, use: (res: http.IncomingMessage) => Promise<T>, key = a.path): Promise<T> {
    let res: http.IncomingMessage;
    try {
      res = await this.attempt(a);
    } catch (e) {
      if (isNetworkFault(e)) throw transientError(this.url, `${a.method} ${key}: ${(e as Error).message}`, { key, cause: (e as NodeJS.ErrnoException).code });
      throw e;
    }
    const status = res.statusCode ?? 0;
    if (status >= 500) {
      const text = (await this.readAll(res, ERROR_MAX, 'error answer').catch(() => Buffer.alloc(0))).toString('utf8');
      let info: { error?: unknown; code?: unknown } = {};
      try {
        info = JSON.parse(text) as typeof info;
      } catch {
        info = { error: text.slice(0, 200) };
      }
      const detail = typeof info?.error === 'string' ? info.error.slice(0, 300) : '';
      throw transientError(this.url, `${a.method} ${key}: HTTP ${status} ${detail}`, {
        key,
        status,
        ...(typeof info?.code === 'string' ? { serverCode: info.code } : {}),
      });
    }
    if (status >= 400) throw await this.failure(res, a, key);
    try {
      return await use(res);
    } catch (e) {
      // an answer we stopped reading (too long, stalled) must not keep its socket busy
      res.destroy();
      throw e;
    }
  }

  private async failure(res: http.IncomingMessage, a: Attempt, key: string): Promise<Error> {
    const status = res.statusCode ?? 0;
    const text = (await this.readAll(res, ERROR_MAX, 'error answer').catch(() => Buffer.alloc(0))).toString('utf8');
    let info: { error?: string; actual?: unknown } = {};
    try {
      info = JSON.parse(text) as typeof info;
    } catch {
      info = { error: text.slice(0, 200) };
    }
    const detail = info.error || `HTTP ${status}`;
    switch (status) {
      case 401:
        return new CkptError('E_AUTH', `${this.url}: ${detail} (set a token for this remote)`, { url: this.url, status });
      case 403:
        return new CkptError('E_AUTH', `${this.url}: ${detail}`, { url: this.url, status });
      case 404:
        return new NotFoundError(`${key} in ${this.url}`, { key, remote: this.url });
      case 409:
        return new CkptError('E_REF_CONFLICT', `${this.url}: ${detail}`, { url: this.url, key, status });
      case 412:
        return new RefConflictError(key, null, parseActual(info.actual));
      case 422: {
        const parsed = parseKey(key);
        return new CorruptObjectError(parsed?.name ?? key, this.url, `the server refused it: ${detail}`);
      }
      default:
        return remoteError(this.url, `${a.method} ${key}: HTTP ${status}: ${detail}`, { key, status });
    }
  }

  async list(prefix: string): Promise<KeyInfo[]> {
    listPrefix(prefix);
    const body = await this.request({ method: 'GET', path: `?list=${encodeURIComponent(prefix)}` }, (res) =>
      this.body(res, SMALL_OBJECT_MAX, `listing of ${prefix}`),
    );
    let items: unknown;
    try {
      items = JSON.parse(body.toString('utf8'));
    } catch {
      throw remoteError(this.url, 'listing is not JSON');
    }
    if (!Array.isArray(items)) throw remoteError(this.url, 'listing is not an array');
    const out: KeyInfo[] = [];
    for (const it of items as { key?: unknown; size?: unknown }[]) {
      if (typeof it?.key !== 'string' || !Number.isSafeInteger(it.size) || (it.size as number) < 0) throw remoteError(this.url, 'bad listing entry');
      // a server is not trusted to hand back only keys we asked for
      if (it.key.startsWith(prefix) && isListableKey(it.key)) out.push({ key: it.key, size: it.size as number });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async stat(key: string): Promise<KeyInfo | undefined> {
    statableKey(key);
    try {
      return await this.request({ method: 'HEAD', path: key }, async (res) => {
        res.resume();
        const size = contentLength(res);
        if (size === undefined) throw remoteError(this.url, `HEAD ${key}: no valid Content-Length`, { key });
        return { key, size };
      });
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    readableKey(key);
    if (!range) {
      const bytes = await this.request({ method: 'GET', path: key }, (res) => this.body(res, maxResponseBytes(key), key));
      verifyBytes(key, bytes, this.url);
      return bytes;
    }
    checkRange(range);
    if (range.length === 0) {
      if (!(await this.stat(key))) throw new NotFoundError(`${key} in ${this.url}`, { key, remote: this.url });
      return new Uint8Array(0);
    }
    return this.rangedGet(key, range.offset, range.length);
  }

  /** One `Range: bytes=a-b` request of a non-empty range; the answer must be that range exactly. */
  private async rangedGet(key: string, offset: number, length: number): Promise<Uint8Array> {
    try {
      return await this.request({ method: 'GET', path: key, headers: { Range: `bytes=${offset}-${offset + length - 1}` } }, async (res) => {
        if (res.statusCode !== 206) {
          res.destroy();
          throw remoteError(this.url, `range ${offset}+${length} of ${key}: HTTP ${res.statusCode} instead of 206`, { key });
        }
        const bytes = await this.body(res, length, `range ${offset}+${length} of ${key}`, length);
        if (bytes.byteLength !== length) {
          throw remoteError(this.url, `range ${offset}+${length} of ${key}: got ${bytes.byteLength} bytes`, { key });
        }
        return bytes;
      });
    } catch (e) {
      if (e instanceof CkptError && e.data.status === 416) {
        throw remoteError(this.url, `range ${offset}+${length} runs past the end of ${key}`, { key });
      }
      throw e;
    }
  }

  /** Ranged reads of one object: its size is learnt once, each range is a request on a kept-alive connection. */
  async openRanges(key: string): Promise<RangeReader> {
    readableKey(key);
    const info = await this.stat(key);
    if (!info) throw new NotFoundError(`${key} in ${this.url}`, { key, remote: this.url });
    return {
      read: async (offset, length) => {
        checkRange({ offset, length });
        if (offset + length > info.size) throw remoteError(this.url, `range ${offset}+${length} runs past the end of ${key}`, { key });
        if (length === 0) return new Uint8Array(0);
        return this.rangedGet(key, offset, length);
      },
      close: async () => undefined,
    };
  }

  /** Reads a response body; a connection cut mid-body is transient. */
  private async body(res: http.IncomingMessage, max: number, what: string, exact?: number): Promise<Buffer> {
    try {
      return await this.readAll(res, max, what, exact);
    } catch (e) {
      if (e instanceof CkptError) throw e;
      throw transientError(this.url, `transfer interrupted: ${(e as Error).message}`, { key: what });
    }
  }

  async getToFile(key: string, dest: string, opts: GetToFileOptions = {}): Promise<void> {
    readableKey(key);
    await this.request({ method: 'GET', path: key }, async (res) => {
      try {
        const max = opts.size ?? (parseKey(key)?.kind === 'pack' ? Number.MAX_SAFE_INTEGER : maxResponseBytes(key));
        await streamToVerifiedFile(key, this.guarded(res, max, key, opts.size), dest, this.url, opts.onReceived);
      } catch (e) {
        if (e instanceof CkptError) throw e;
        throw transientError(this.url, `transfer of ${key} interrupted: ${(e as Error).message}`, { key });
      }
    });
  }

  async put(key: string, body: PutBody): Promise<void> {
    objectKey(key);
    const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream' };
    if ('bytes' in body) {
      verifyBytes(key, body.bytes, 'upload');
      await this.request({ method: 'PUT', path: key, headers, body: body.bytes }, async (res) => void res.resume());
      return;
    }
    // the server hashes what it receives; only skip the upload when it already has the object
    if (await this.stat(key)) return;
    const file = body.file;
    const size = (await fs.stat(file)).size;
    // a pack whose upload was cut off (this push killed, the connection lost) goes on from where the server stopped
    const kept = parseKey(key)?.kind === 'pack' ? await this.partialUpload(key) : 0;
    const offset = kept > 0 && kept < size ? kept : 0;
    if (offset > 0) body.onSent?.(offset);
    try {
      await this.putFrom(key, file, size, offset, body.onSent);
    } catch (e) {
      // the kept bytes went away meanwhile (409), or were not the pack's (422): once more, whole
      if (offset === 0 || !(e instanceof CkptError) || e.data.transient === true) throw e;
      await this.putFrom(key, file, size, 0, body.onSent);
    }
  }

  private async putFrom(key: string, file: string, size: number, offset: number, onSent?: (bytes: number) => void): Promise<void> {
    const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream', 'Content-Length': size - offset };
    if (offset > 0) headers[UPLOAD_OFFSET] = offset;
    const send = () => {
      const s = createReadStream(file, { start: offset, highWaterMark: 1 << 20 });
      if (onSent) s.on('data', (c) => onSent(c.length));
      return s;
    };
    await this.request({ method: 'PUT', path: key, headers, body: send }, async (res) => void res.resume());
  }

  /** Bytes `ckpt serve` kept of an interrupted upload of a pack (HEAD <key>?partial); 0 when none, or an older server. */
  private async partialUpload(key: string): Promise<number> {
    try {
      return await this.request({ method: 'HEAD', path: `${key}?partial` }, async (res) => {
        res.resume();
        const n = Number(res.headers[UPLOAD_OFFSET]);
        return Number.isSafeInteger(n) && n > 0 ? n : 0;
      }, key);
    } catch (e) {
      if (e instanceof CkptError && !e.data.transient) return 0;
      throw e;
    }
  }

  /** Objects need the admin token, marks too (a mark is a retention decision): docs in storeServer.ts. */
  async delete(key: string): Promise<void> {
    deletableKey(key);
    try {
      await this.request({ method: 'DELETE', path: key }, async (res) => void res.resume());
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
  }

  async readRef(ref: string): Promise<string | null> {
    refName(ref);
    try {
      const bytes = await this.request({ method: 'GET', path: ref }, (res) => this.body(res, REF_OBJECT_MAX, ref));
      return decodeRef(ref, bytes);
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
  }

  /**
   * PUT (or DELETE) of the ref with If-Match: "<expected>" or If-None-Match: *; the reflog entry
   * rides along in the ckpt-reflog header and the server appends it under the ref's lock.
   */
  async casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void> {
    refName(ref);
    if (expected !== null) encodeRef(expected);
    const headers: Record<string, string> = log ? { [REFLOG_HEADER]: reflogHeader(log) } : {};
    let a: Attempt;
    if (next !== null) {
      const precondition: Record<string, string> = expected === null ? { 'If-None-Match': '*' } : { 'If-Match': `"${expected}"` };
      a = { method: 'PUT', path: ref, headers: { 'Content-Type': 'text/plain', ...precondition, ...headers }, body: encodeRef(next) };
    } else if (expected === null) {
      const current = await this.readRef(ref);
      if (current !== null) throw refConflict(ref, expected, current);
      return;
    } else {
      a = { method: 'DELETE', path: ref, headers: { 'If-Match': `"${expected}"`, ...headers } };
    }
    try {
      await this.request(a, async (res) => void res.resume(), ref);
    } catch (e) {
      if (!(e instanceof RefConflictError)) throw e;
      throw refConflict(ref, expected, (e.data.actual as string | null) ?? null);
    }
  }

  async readFile(key: string): Promise<Uint8Array | undefined> {
    storeFileKey(key);
    try {
      return await this.request({ method: 'GET', path: key }, (res) => this.body(res, maxStoreFileBytes(key), key));
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  async writeFile(key: string, bytes: Uint8Array): Promise<void> {
    writableStoreFileKey(key);
    await this.request({ method: 'PUT', path: key, headers: { 'Content-Type': 'application/octet-stream' }, body: bytes }, async (res) => void res.resume());
  }

  /**
   * A lease on the server's shared store lock (storeLeases.ts), renewed every third of its life.
   * While gc holds the store the server says 503 at once, and this asks again until `lockWaitMs`
   * has passed. A lease that could not be renewed in time is lost: check() then throws, and a
   * push stops before it moves a ref.
   */
  lockShared(purpose: string): Promise<RemoteLock> {
    return this.lease('shared', purpose, this.options.lockWaitMs ?? sharedLockWaitMs());
  }

  /**
   * A lease on the server's exclusive store lock (gc, prune; the admin token): the server takes
   * gc.lock at once or says 503, then the lease is granted once no shared lock is live. Until
   * then this renews it, which also asks again.
   */
  lockExclusive(purpose: string): Promise<RemoteLock> {
    return this.lease('exclusive', purpose, this.options.lockWaitMs ?? 10 * 60_000);
  }

  private async lease(mode: 'shared' | 'exclusive', purpose: string, waitMs: number): Promise<RemoteLock> {
    const deadline = Date.now() + waitMs;
    const query = `?lock=${encodeURIComponent(purpose)}${mode === 'exclusive' ? '&mode=exclusive' : ''}`;
    let answer: LeaseAnswer;
    for (let pause = 100; ; pause = Math.min(pause * 2, 1000)) {
      try {
        answer = parseLeaseAnswer(this.url, await this.request({ method: 'POST', path: query }, (res) => this.body(res, ERROR_MAX, 'lease')));
        break;
      } catch (e) {
        const locked = e instanceof CkptError && e.data.status === 503 && e.data.serverCode === 'E_LOCKED';
        if (locked && Date.now() < deadline) {
          await sleep(pause);
          continue;
        }
        // a server from before leases: it has no gc protocol to join
        if (mode === 'shared' && e instanceof CkptError && e.data.status === 405) return { release: async () => undefined, check: () => undefined };
        if (locked) {
          const what = mode === 'shared' ? 'the store stayed locked by gc or prune' : 'gc or prune already holds the store';
          throw new CkptError('E_LOCKED', `${this.url}: ${what} for ${Math.round(waitMs / 1000)} s: ${(e as Error).message}`, { url: this.url });
        }
        throw e;
      }
    }
    const { lease, ttlMs } = answer;
    const release = () => this.request({ method: 'DELETE', path: `?lease=${lease}` }, async (res) => void res.resume()).then(() => undefined);
    /** One renewal: whether the lease still lives, and (exclusive) whether it is granted. */
    const renew = async (): Promise<{ alive: boolean; granted: boolean; waitingFor: string[] }> => {
      try {
        const body = await this.request({ method: 'POST', path: `?renew=${lease}` }, (res) => this.body(res, ERROR_MAX, 'lease renewal'));
        let v: { granted?: unknown; waitingFor?: unknown } = {};
        try {
          v = body.byteLength ? (JSON.parse(body.toString('utf8')) as typeof v) : {};
        } catch {
          v = {};
        }
        const waitingFor = Array.isArray(v?.waitingFor) ? v.waitingFor.filter((x): x is string => typeof x === 'string').slice(0, 20) : [];
        return { alive: true, granted: v?.granted !== false, waitingFor };
      } catch (e) {
        if (e instanceof NotFoundError) return { alive: false, granted: false, waitingFor: [] };
        throw e;
      }
    };
    let since = Date.now();
    if (mode === 'exclusive') {
      try {
        if (answer.granted === undefined) {
          throw remoteError(this.url, 'this server grants no exclusive lock (a ckpt serve older than gc over HTTP); upgrade it');
        }
        let waitingFor: string[] = [];
        const notify = waitNotifier(async () => `${waitingFor.length} commit(s) or push(es) on ${this.url} to finish: ${waitingFor.join(', ')}`);
        for (let granted = answer.granted; !granted; ) {
          await sleep(Math.min(250, ttlMs / 3));
          const started = Date.now();
          let r;
          try {
            r = await renew();
          } catch (e) {
            if (Date.now() - since >= ttlMs) throw e;
            continue;
          }
          if (!r.alive) throw new CkptError('E_LOCKED', `${this.url}: the exclusive lease lapsed while waiting for commits to finish`, { url: this.url });
          since = started;
          granted = r.granted;
          waitingFor = r.waitingFor;
          if (!granted && Date.now() > deadline) {
            throw new CkptError('E_LOCKED', `${this.url}: commits or pushes still running after ${Math.round(waitMs / 1000)} s: ${waitingFor.join(', ')}`, { url: this.url, holders: waitingFor });
          }
          await notify();
        }
      } catch (e) {
        await release().catch(() => undefined);
        throw e;
      }
    }
    return renewedLock({
      what: `the lease on the store's ${mode} lock`,
      url: this.url,
      leaseMs: ttlMs,
      everyMs: Math.floor(ttlMs / 3),
      since,
      renew: async () => (await renew()).alive,
      release,
    });
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** The ref value a 412 answer names; the server is not trusted to send a well-formed one. */
function parseActual(v: unknown): string | null {
  return typeof v === 'string' && isObjectId(v) ? v : null;
}
