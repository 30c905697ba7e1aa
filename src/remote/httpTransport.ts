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
import { parseKey } from '../store/objectKeys.js';
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
  type KeyInfo,
  type PutBody,
  type Transport,
} from './transport.js';

export interface HttpTransportOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Extra attempts after a connection error or 5xx; default 2. */
  retries?: number;
  /** A connection silent this long is dropped (and retried when that is safe); default 60 s. */
  idleTimeoutMs?: number;
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
  if (e instanceof Transient) return true;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return (code !== undefined && RETRYABLE_CODES.has(code)) || (e as Error | undefined)?.message === 'socket hang up';
}

async function readAll(res: http.IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of res as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}

export class HttpTransport implements Transport {
  readonly url: string;
  private readonly base: URL;
  private readonly basePath: string;
  private readonly agent: http.Agent;
  private readonly client: typeof http | typeof https;

  constructor(
    url: string,
    private readonly options: HttpTransportOptions = {},
  ) {
    this.base = new URL(url);
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') {
      throw new UsageError(`not an http(s) URL: ${url}`);
    }
    if (this.base.search || this.base.hash) throw new UsageError(`a remote URL takes no query or fragment: ${url}`);
    this.basePath = this.base.pathname.replace(/\/+$/, '');
    if (this.basePath === '') throw new UsageError(`the URL must name a repository: ${url}/<repo>`);
    this.url = `${this.base.origin}${this.basePath}`;
    this.client = this.base.protocol === 'https:' ? https : http;
    this.agent = new this.client.Agent({ keepAlive: true, maxSockets: 16 });
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
      req.setTimeout(this.options.idleTimeoutMs ?? 60_000, () => {
        req.destroy(Object.assign(new Error(`no answer from ${this.url}`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', reject);
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
          const text = (await readAll(res).catch(() => Buffer.alloc(0))).toString('utf8');
          throw new Transient(`${a.method} ${key}: HTTP ${status} ${text.slice(0, 200)}`, status);
        }
        if (status >= 400) throw await this.failure(res, a, key);
        return await use(res);
      } catch (e) {
        if (i >= retries || !isTransient(e)) {
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
    const text = (await readAll(res).catch(() => Buffer.alloc(0))).toString('utf8');
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
    const body = await this.request({ method: 'GET', path: `?list=${encodeURIComponent(prefix)}` }, true, readAll);
    let items: unknown;
    try {
      items = JSON.parse(body.toString('utf8'));
    } catch {
      throw remoteError(this.url, 'listing is not JSON');
    }
    if (!Array.isArray(items)) throw remoteError(this.url, 'listing is not an array');
    const out: KeyInfo[] = [];
    for (const it of items as { key?: unknown; size?: unknown }[]) {
      if (typeof it?.key !== 'string' || typeof it.size !== 'number') throw remoteError(this.url, 'bad listing entry');
      // a server is not trusted to hand back only keys we asked for
      if (it.key.startsWith(prefix) && parseKey(it.key)) out.push({ key: it.key, size: it.size });
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async stat(key: string): Promise<KeyInfo | undefined> {
    readableKey(key);
    try {
      return await this.request({ method: 'HEAD', path: key }, true, async (res) => {
        res.resume();
        return { key, size: Number(res.headers['content-length'] ?? 0) };
      });
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    readableKey(key);
    if (!range) {
      const bytes = await this.request({ method: 'GET', path: key }, true, (res) => this.body(res));
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
          const bytes = await this.body(res);
          if (res.statusCode !== 206 || bytes.byteLength !== length) {
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
  private async body(res: http.IncomingMessage): Promise<Buffer> {
    try {
      return await readAll(res);
    } catch (e) {
      throw new Transient(`${this.url}: transfer interrupted: ${(e as Error).message}`);
    }
  }

  async getToFile(key: string, dest: string): Promise<void> {
    readableKey(key);
    await this.request({ method: 'GET', path: key }, true, async (res) => {
      try {
        await streamToVerifiedFile(key, res, dest, this.url);
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
      const bytes = await this.request({ method: 'GET', path: ref }, true, (res) => this.body(res));
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

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

/** The ref value a 412 answer names; the server is not trusted to send a well-formed one. */
function parseActual(v: unknown): string | null {
  return typeof v === 'string' && isObjectId(v) ? v : null;
}
