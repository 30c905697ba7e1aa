/**
 * A remote served by storeServer (`ckpt serve`), over node:http(s) rather than fetch: request
 * bodies stream from disk with a known Content-Length, and paths go out exactly as built.
 * Idempotent requests are retried a couple of times on connection errors and 5xx, as restic
 * wraps its backends; a ref update is retried too, and a retry that finds the ref already at
 * the new value counts as success (the first attempt landed but its answer was lost).
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
  encodeRef,
  listPrefix,
  objectKey,
  readableKey,
  refConflict,
  refName,
  remoteError,
  streamToVerifiedFile,
  verifyBytes,
  maxResponseBytes,
  REF_OBJECT_MAX,
  SMALL_OBJECT_MAX,
  type GetToFileOptions,
  type KeyInfo,
  type PutBody,
  type RemoteLock,
  type Backend,
} from './backend.js';
import { clientLimits, guardStream, StallError, type StallLimits } from './stallGuard.js';

export interface HttpBackendOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Extra attempts after a connection error or 5xx; default 2. */
  retries?: number;
  /** A connection silent this long is dropped (and retried when that is safe); default the stall timeout. */
  idleTimeoutMs?: number;
  /** No progress for this long ends a transfer (default $CKPT_STALL_TIMEOUT or 60 s). */
  stallMs?: number;
  /** One request, body included, ends by then (default $CKPT_DEADLINE or 6 h). */
  deadlineMs?: number;
  /** First retry delay, quadrupled per attempt; default 200 ms. */
  retryDelayMs?: number;
}

type Body = Uint8Array | (() => Readable);

interface Attempt {
  method: string;
  /** Path relative to the repository: a key, or `?list=...`. */
  path: string;
  headers?: Record<string, string | number>;
  body?: Body;
}

/** A failure worth another attempt: the connection broke or the server had a transient error. */
class Transient extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const RETRYABLE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ECONNABORTED']);

function isTransient(e: unknown): boolean {
  if (e instanceof Transient || e instanceof StallError) return true;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return (code !== undefined && RETRYABLE_CODES.has(code)) || (e as Error | undefined)?.message === 'socket hang up';
}

const ERROR_MAX = 64 * 1024;

function contentLength(res: http.IncomingMessage): number | undefined {
  const h = res.headers['content-length'];
  if (h === undefined) return undefined;
  const n = Number(h);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
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
   * Sends a request, retrying when `retry` allows it, and turns error statuses into typed
   * errors. `use` consumes the successful response; a Transient thrown from it (a stream cut
   * mid-body) is retried like a failed connection.
   */
  private async request<T>(
    a: Attempt,
    retry: boolean,
    use: (res: http.IncomingMessage) => Promise<T>,
    key = a.path,
    state = { attempts: 0 },
  ): Promise<T> {
    const retries = retry ? (this.options.retries ?? 2) : 0;
    for (let i = 0; ; i++) {
      state.attempts++;
      try {
        const res = await this.attempt(a);
        const status = res.statusCode ?? 0;
        if (status >= 500) {
          const text = (await this.readAll(res, ERROR_MAX, 'error answer').catch(() => Buffer.alloc(0))).toString('utf8');
          throw new Transient(`${a.method} ${key}: HTTP ${status} ${text.slice(0, 200)}`, status);
        }
        if (status >= 400) throw await this.failure(res, a, key);
        try {
          return await use(res);
        } catch (e) {
          // an answer we stopped reading (too long, stalled) must not keep its socket busy
          res.destroy();
          throw e;
        }
      } catch (e) {
        if (i >= retries || !isTransient(e)) {
          if (e instanceof StallError) throw e;
          if (isTransient(e)) {
            throw remoteError(this.url, (e as Error).message, { key, status: (e as Transient).status });
          }
          throw e;
        }
        await new Promise((r) => setTimeout(r, (this.options.retryDelayMs ?? 200) * 4 ** i));
      }
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
    const body = await this.request({ method: 'GET', path: `?list=${encodeURIComponent(prefix)}` }, true, (res) =>
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
      if (it.key.startsWith(prefix) && parseKey(it.key)) out.push({ key: it.key, size: it.size as number });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async stat(key: string): Promise<KeyInfo | undefined> {
    readableKey(key);
    try {
      return await this.request({ method: 'HEAD', path: key }, true, async (res) => {
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
      const bytes = await this.request({ method: 'GET', path: key }, true, (res) => this.body(res, maxResponseBytes(key), key));
      verifyBytes(key, bytes, this.url);
      return bytes;
    }
    checkRange(range);
    if (range.length === 0) {
      if (!(await this.stat(key))) throw new NotFoundError(`${key} in ${this.url}`, { key, remote: this.url });
      return new Uint8Array(0);
    }
    const { offset, length } = range;
    try {
      return await this.request(
        { method: 'GET', path: key, headers: { Range: `bytes=${offset}-${offset + length - 1}` } },
        true,
        async (res) => {
          if (res.statusCode !== 206) {
            res.destroy();
            throw remoteError(this.url, `range ${offset}+${length} of ${key}: HTTP ${res.statusCode} instead of 206`, { key });
          }
          const bytes = await this.body(res, length, `range ${offset}+${length} of ${key}`, length);
          if (bytes.byteLength !== length) {
            throw remoteError(this.url, `range ${offset}+${length} of ${key}: got ${bytes.byteLength} bytes`, { key });
          }
          return bytes;
        },
      );
    } catch (e) {
      if (e instanceof CkptError && e.data.status === 416) {
        throw remoteError(this.url, `range ${offset}+${length} runs past the end of ${key}`, { key });
      }
      throw e;
    }
  }

  /** Reads a response body; a cut connection mid-body becomes retryable. */
  private async body(res: http.IncomingMessage, max: number, what: string, exact?: number): Promise<Buffer> {
    try {
      return await this.readAll(res, max, what, exact);
    } catch (e) {
      if (e instanceof CkptError) throw e;
      throw new Transient(`${this.url}: transfer interrupted: ${(e as Error).message}`);
    }
  }

  async getToFile(key: string, dest: string, opts: GetToFileOptions = {}): Promise<void> {
    readableKey(key);
    await this.request({ method: 'GET', path: key }, true, async (res) => {
      try {
        const max = opts.size ?? (parseKey(key)?.kind === 'pack' ? Number.MAX_SAFE_INTEGER : maxResponseBytes(key));
        await streamToVerifiedFile(key, this.guarded(res, max, key, opts.size), dest, this.url);
      } catch (e) {
        if (e instanceof CkptError) throw e;
        throw new Transient(`${this.url}: transfer of ${key} interrupted: ${(e as Error).message}`);
      }
    });
  }

  async put(key: string, body: PutBody): Promise<void> {
    objectKey(key);
    let send: Body;
    const headers: Record<string, string | number> = { 'Content-Type': 'application/octet-stream' };
    if ('bytes' in body) {
      verifyBytes(key, body.bytes, 'upload');
      send = body.bytes;
    } else {
      // the server hashes what it receives; only skip the upload when it already has the object
      if (await this.stat(key)) return;
      const file = body.file;
      headers['Content-Length'] = (await fs.stat(file)).size;
      send = () => createReadStream(file, { highWaterMark: 1 << 20 });
    }
    await this.request({ method: 'PUT', path: key, headers, body: send }, true, async (res) => {
      res.resume();
    });
  }

  async delete(key: string): Promise<void> {
    objectKey(key);
    try {
      await this.request({ method: 'DELETE', path: key }, true, async (res) => {
        res.resume();
      });
    } catch (e) {
      if (!(e instanceof NotFoundError)) throw e;
    }
  }

  async readRef(ref: string): Promise<string | null> {
    refName(ref);
    try {
      const bytes = await this.request({ method: 'GET', path: ref }, true, (res) => this.body(res, REF_OBJECT_MAX, ref));
      return decodeRef(ref, bytes);
    } catch (e) {
      if (e instanceof NotFoundError) return null;
      throw e;
    }
  }

  async casRef(ref: string, expected: string | null, next: string | null): Promise<void> {
    refName(ref);
    if (expected !== null) encodeRef(expected);
    let a: Attempt;
    if (next !== null) {
      const precondition: Record<string, string> =
        expected === null ? { 'If-None-Match': '*' } : { 'If-Match': `"${expected}"` };
      a = { method: 'PUT', path: ref, headers: { 'Content-Type': 'text/plain', ...precondition }, body: encodeRef(next) };
    } else if (expected === null) {
      const current = await this.readRef(ref);
      if (current !== null) throw refConflict(ref, expected, current);
      return;
    } else {
      a = { method: 'DELETE', path: ref, headers: { 'If-Match': `"${expected}"` } };
    }
    const state = { attempts: 0 };
    try {
      await this.request(a, true, async (res) => void res.resume(), ref, state);
    } catch (e) {
      if (!(e instanceof RefConflictError)) throw e;
      const actual = (e.data.actual as string | null) ?? null;
      // after a retry, finding the ref already at `next` means an earlier attempt landed and only
      // its answer was lost
      if (state.attempts > 1 && actual === next) return;
      throw refConflict(ref, expected, actual);
    }
  }

  /**
   * A lease on the server's shared store lock (storeLeases.ts), renewed every third of its
   * life. While gc holds the store the server says 503 at once, and this asks again until
   * $CKPT_LOCK_WAIT seconds (default 30 min) have passed. A lease that could not be renewed in
   * time is lost: check() then throws, and the push stops before it moves a ref.
   */
  async lockShared(purpose: string): Promise<RemoteLock> {
    const waitS = Number(process.env.CKPT_LOCK_WAIT ?? 1800);
    const deadline = Date.now() + (Number.isFinite(waitS) && waitS >= 0 ? waitS : 1800) * 1000;
    let granted: { lease: string; ttlMs: number };
    for (let pause = 100; ; pause = Math.min(pause * 2, 1000)) {
      try {
        const body = await this.request({ method: 'POST', path: `?lock=${encodeURIComponent(purpose)}` }, false, (res) =>
          this.body(res, ERROR_MAX, 'lease'),
        );
        const v = JSON.parse(body.toString('utf8')) as { lease?: unknown; ttlMs?: unknown };
        if (typeof v.lease !== 'string' || !/^[0-9a-f]{32}$/.test(v.lease) || !Number.isSafeInteger(v.ttlMs) || (v.ttlMs as number) < 100) {
          throw remoteError(this.url, 'malformed lease answer');
        }
        granted = { lease: v.lease, ttlMs: v.ttlMs as number };
        break;
      } catch (e) {
        if (e instanceof SyntaxError) throw remoteError(this.url, 'malformed lease answer');
        if (e instanceof CkptError && e.data.status === 503 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, pause));
          continue;
        }
        // a server from before leases: it has no gc protocol to join
        if (e instanceof CkptError && e.data.status === 405) return { release: async () => undefined };
        if (e instanceof CkptError && e.data.status === 503) {
          throw new CkptError('E_LOCKED', `${this.url}: the store stayed locked (gc?) for ${waitS} s: ${e.message}`, { url: this.url });
        }
        throw e;
      }
    }
    const { lease, ttlMs } = granted;
    let lastRenewed = Date.now();
    let lost: string | undefined;
    const renew = async () => {
      try {
        await this.request({ method: 'POST', path: `?renew=${lease}` }, false, async (res) => void res.resume());
        lastRenewed = Date.now();
      } catch (e) {
        if (e instanceof NotFoundError) lost = 'the server released it';
      }
      if (!lost && Date.now() - lastRenewed >= ttlMs) lost = `not renewed within ${ttlMs} ms`;
    };
    let renewing: Promise<void> | undefined;
    const timer = setInterval(() => {
      renewing ??= renew().finally(() => (renewing = undefined));
    }, Math.max(50, Math.floor(ttlMs / 3)));
    timer.unref();
    return {
      check: () => {
        if (!lost && Date.now() - lastRenewed >= ttlMs) lost = `not renewed within ${ttlMs} ms`;
        if (lost) throw new CkptError('E_LOCKED', `${this.url}: lost the lease on the store's lock (${lost}); nothing was published, run again`, { url: this.url });
      },
      release: async () => {
        clearInterval(timer);
        await renewing;
        await this.request({ method: 'DELETE', path: `?lease=${lease}` }, true, async (res) => void res.resume()).catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** The ref value a 412 answer names; the server is not trusted to send a well-formed one. */
function parseActual(v: unknown): string | null {
  return typeof v === 'string' && isObjectId(v) ? v : null;
}
