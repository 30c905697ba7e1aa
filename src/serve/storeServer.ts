/**
 * The HTTP server behind `ckpt serve`: one or many stores under a root, spoken to by
 * HttpBackend. The server trusts no client: every upload is hashed while it streams into
 * tmp/ and stored only if it matches its key; bodies are bounded; paths are checked before any
 * filesystem call, so no request reaches outside the root.
 *
 *   GET|HEAD /<repo>/<key>            object or ref; `Range: bytes=a-b` answers 206
 *   GET|HEAD /<repo>/config|HEAD|logs/<ref>|pruned/<id>   a store file; 404 when missing
 *   GET      /<repo>/?list=<prefix>   JSON [{key, size}]: objects, refs and store files
 *   PUT      /<repo>/<object key>     201 stored, 200 already there, 422 bytes do not match the key;
 *                                    a pack cut off midway is kept in tmp/<name>.upload
 *   HEAD     /<repo>/<pack key>?partial   200 with `Upload-Offset: <bytes kept>`, 404 when none
 *   PUT      /<repo>/<pack key> + `Upload-Offset: N`   the body is the pack from byte N on, after
 *                                    the N bytes kept (hashed again); 409 when fewer are kept
 *   PUT      /<repo>/refs/...         body "<id>\n" with If-Match: "<old>" or If-None-Match: *;
 *                                    412 with {actual} when the ref holds something else; a
 *                                    `ckpt-reflog: <time ms> <percent-encoded reason>` header is
 *                                    appended to logs/<ref> under the ref's lock
 *   DELETE   /<repo>/refs/...         If-Match: "<old>" (and ckpt-reflog, as for PUT)
 *   PUT      /<repo>/config|HEAD      204: the file replaced whole, atomically
 *   PUT      /<repo>/pruned/<id>      204: a retention mark written
 *   DELETE   /<repo>/<object key>     204
 *   DELETE   /<repo>/pruned/<id>      204
 *   GET      /<repo>/view             the `ckpt view` page of the store (HTML)
 *   POST     /<repo>/?lock=<purpose>  201 {lease, ttlMs, granted}: the store's shared lock, held
 *                                    for a commit, push or checkout; 503 E_LOCKED while gc runs
 *   POST     /<repo>/?lock=<purpose>&mode=exclusive   201 {lease, ttlMs, granted}: gc.lock, taken
 *                                    at once or 503 E_LOCKED; granted once no shared lock is live
 *   POST     /<repo>/?renew=<lease>   200 {granted, waitingFor?}, or 404 when the lease lapsed
 *                                    or its lock was broken
 *   DELETE   /<repo>/?lease=<lease>   204
 *
 * <repo> is one path segment; it maps to <root>/<repo>, or <root>/<repo>/.ckpt when that exists.
 *
 * Tokens. With a readToken, reads need it (or a write or admin token); with a writeToken, writes
 * need it (or the admin token) and a read token on a write gets 403; a server with only a
 * readToken is read-only. What needs which token:
 *   read   every GET and HEAD, listings;
 *   write  uploading objects; creating, moving and deleting refs (a ref delete needs exactly what
 *          a ref move needs: a forced move loses as much history as a delete); config and HEAD;
 *          shared leases, renewing and releasing any lease;
 *   admin  deleting objects; writing or deleting a retention mark (a mark tells gc to drop a
 *          commit's chunks, and only gc removes marks); the exclusive lease (gc, prune).
 * So a pusher can add objects and move refs but cannot destroy stored bytes (restic rest-server's
 * --append-only); a server with tokens but no adminToken deletes nothing.
 *
 * Nothing a client sends is trusted: no path component under the root may be a symlink (every
 * one is checked with lstat, files are opened with O_NOFOLLOW); bodies stream to tmp/ under a
 * per-kind size limit checked against Content-Length before a byte is read; slow headers, slow
 * bodies and idle connections are cut; uploads beyond a cap get 503; a ref moves only to a
 * commit whose every object the store holds (commitComplete.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CkptError, CorruptObjectError, RefConflictError } from '../core/errors.js';
import { isObjectId } from '../core/objectId.js';
import { parseKey, parseStoreFileKey } from '../backend/objectKeys.js';
import { assertCommitComplete } from '../sync/commitComplete.js';
import { ServedStore } from '../store/servedStore.js';
import { guardStream, StallError, TooLargeError } from '../backend/stallGuard.js';
import { StoreLeases, type LeaseMode } from './storeLeases.js';
import { listPrefix, STORE_FILE_MAX, type RefLogEntry } from '../backend/backend.js';
import { REFLOG_HEADER, UPLOAD_OFFSET } from '../backend/httpBackend.js';
import { serveView } from '../view/serveView.js';

export interface RequestLogEntry {
  method: string;
  path: string;
  status: number;
  /** Body bytes received (uploads) or sent (downloads). */
  bytes: number;
  ms: number;
}

export interface StoreServerOptions {
  root: string;
  host?: string;
  port?: number;
  readToken?: string;
  writeToken?: string;
  /** Needed to delete objects, write or delete marks and take the exclusive lease; without it a server with tokens deletes nothing. */
  adminToken?: string;
  /** Largest request body accepted (packs); default 1 GiB. */
  maxBodyBytes?: number;
  /** Largest metadata object or index file accepted; default 16 MiB. */
  maxSmallBodyBytes?: number;
  /** Uploads in progress at once; more get 503. Default 8. */
  maxUploads?: number;
  /** Request headers must arrive within this; default 30 s. */
  headersTimeoutMs?: number;
  /** A whole request, body included, must arrive within this; default 2 h. */
  requestTimeoutMs?: number;
  /** A connection or body without progress this long is cut; default 60 s. */
  idleTimeoutMs?: number;
  /** How long a lease on the store lock lives unless renewed; default 60 s. */
  leaseMs?: number;
  /** Refuse a ref update to a commit the store does not wholly hold; default true. */
  verifyRefTargets?: boolean;
  /** Called once per request; default writes one line to stderr. */
  log?: (line: string, entry: RequestLogEntry) => void;
  /** close() lets in-flight requests run this long before cutting their connections; default 30 s. */
  closeGraceMs?: number;
}

export interface StoreServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const MAX_REF_BODY = 1024;
const SEGMENT_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
// Keys and repo names use these characters only, so anything else (percent-encoding included:
// %2F, %5C, %00, %2E) is refused before decoding could turn it into a separator or a dot-dot.
const RAW_PATH_RE = /^\/[A-Za-z0-9._\/-]*$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

function tokenMatches(given: string | undefined, want: string | undefined): boolean {
  if (given === undefined || want === undefined) return false;
  return timingSafeEqual(digest(given), digest(want));
}

function bearer(req: http.IncomingMessage): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : undefined;
}

/** A quoted or bare commit id from If-Match, as HttpBackend sends it. */
function etagId(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const id = header.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  if (!isObjectId(id)) throw new HttpError(400, `If-Match must name a commit id`);
  return id;
}

function statusOf(e: unknown): number {
  if (e instanceof HttpError) return e.status;
  if (e instanceof RefConflictError) return 412;
  if (e instanceof CorruptObjectError) return 422;
  if (e instanceof TooLargeError) return 413;
  if (e instanceof StallError) return 408;
  if ((e as NodeJS.ErrnoException).code === 'ELOOP') return 400;
  if (e instanceof CkptError) {
    // a resumed upload named more bytes than the server kept
    if (e.data.uploadKept !== undefined) return 409;
    switch (e.code) {
      case 'E_REF_CONFLICT':
        return 409;
      case 'E_USAGE':
        return 400;
      case 'E_NOT_FOUND':
        return 404;
      case 'E_LOCKED':
        return 503;
      default:
        return 500;
    }
  }
  return 500;
}

function printable(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '?').slice(0, 300);
}

export async function startStoreServer(options: StoreServerOptions): Promise<StoreServer> {
  const { host = '127.0.0.1', port = 0, readToken, writeToken, adminToken } = options;
  const maxBodyBytes = options.maxBodyBytes ?? 1024 ** 3;
  const maxSmallBodyBytes = Math.min(options.maxSmallBodyBytes ?? 16 * 1024 ** 2, maxBodyBytes);
  const maxUploads = options.maxUploads ?? 8;
  const headersTimeoutMs = options.headersTimeoutMs ?? 30_000;
  const requestTimeoutMs = options.requestTimeoutMs ?? 2 * 3600_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
  const verifyRefTargets = options.verifyRefTargets ?? true;
  const leases = new StoreLeases(options.leaseMs ?? 60_000);
  let uploads = 0;
  const graceMs = options.closeGraceMs ?? 30_000;
  const log =
    options.log ??
    ((line: string) => {
      process.stderr.write(`${line}\n`);
    });
  await fs.mkdir(options.root, { recursive: true });
  const root = await fs.realpath(path.resolve(options.root));
  let closing = false;

  const open = readToken === undefined && writeToken === undefined && adminToken === undefined;

  /** The token a request needs (see the table at the top), and what it does, for a refusal. */
  function requiredLevel(method: string, key: string, query: URLSearchParams): { level: 'read' | 'write' | 'admin'; what: string } {
    if (method === 'GET' || method === 'HEAD') return { level: 'read', what: 'reading' };
    if (method === 'POST') return query.has('lock') && query.get('mode') === 'exclusive' ? { level: 'admin', what: 'the exclusive lock (gc, prune)' } : { level: 'write', what: 'a lease' };
    const mark = parseStoreFileKey(key)?.kind === 'mark';
    if (method === 'PUT') return mark ? { level: 'admin', what: 'writing a retention mark' } : { level: 'write', what: 'writing' };
    // DELETE: a lease, a ref (as a ref move), or stored bytes
    if (key === '' || parseKey(key)?.kind === 'ref') return { level: 'write', what: 'writing' };
    return { level: 'admin', what: mark ? 'deleting a retention mark' : 'deleting objects' };
  }

  function authorize(req: http.IncomingMessage, level: 'read' | 'write' | 'admin', what: string): void {
    const token = bearer(req);
    const challenge = { 'WWW-Authenticate': 'Bearer realm="ckpt"' };
    if (open) return;
    const admin = tokenMatches(token, adminToken);
    if (level === 'admin') {
      if (admin) return;
      if (tokenMatches(token, writeToken) || tokenMatches(token, readToken)) {
        throw new HttpError(403, adminToken === undefined ? `this server deletes nothing: ${what} needs the admin token (start it with --admin-token)` : `${what} needs the admin token`);
      }
      throw new HttpError(401, token === undefined ? 'the admin token is required' : 'invalid token', {}, challenge);
    }
    if (level === 'write') {
      if (admin || tokenMatches(token, writeToken)) return;
      if (tokenMatches(token, readToken)) throw new HttpError(403, 'this token may only read');
      throw new HttpError(401, token === undefined ? 'a write token is required' : 'invalid token', {}, challenge);
    }
    if (readToken === undefined) return;
    if (admin || tokenMatches(token, readToken) || tokenMatches(token, writeToken)) return;
    throw new HttpError(401, token === undefined ? 'a token is required' : 'invalid token', {}, challenge);
  }

  /** Splits a raw request path into the repo's store and the key, refusing anything odd. */
  async function locate(rawPath: string): Promise<{ store: ServedStore; key: string }> {
    if (!RAW_PATH_RE.test(rawPath)) throw new HttpError(400, 'bad path');
    const slash = rawPath.indexOf('/', 1);
    if (slash < 0) throw new HttpError(400, 'expected /<repo>/<key>');
    const repo = rawPath.slice(1, slash);
    const key = rawPath.slice(slash + 1);
    if (!SEGMENT_RE.test(repo)) throw new HttpError(400, 'bad repository name');
    if (path.dirname(path.resolve(root, repo)) !== root) throw new HttpError(400, 'bad repository name');
    // no symlink under the root: not the repo, not its store, not anything on the way to a key
    return { store: await ServedStore.open(root, repo, key, (message) => new HttpError(400, message)), key };
  }

  /** The request body under the size bound and the stall guard (progress every idle window). */
  async function* limited(req: http.IncomingMessage, counter: { bytes: number }, max: number, declared: number | undefined): AsyncIterable<Uint8Array> {
    const guard = guardStream(req, { max, declared, stallMs: idleTimeoutMs, deadlineMs: requestTimeoutMs, what: 'upload' });
    for await (const chunk of guard) {
      counter.bytes += chunk.byteLength;
      yield chunk;
    }
  }

  async function readSmallBody(req: http.IncomingMessage, counter: { bytes: number }, max = MAX_REF_BODY, what = 'ref body'): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) throw new HttpError(413, `${what} larger than ${max} bytes`);
    const parts: Buffer[] = [];
    for await (const chunk of limited(req, counter, max, undefined)) parts.push(Buffer.from(chunk));
    return Buffer.concat(parts);
  }

  /** The reflog entry a ref update carries, if any. */
  function reflogEntry(req: http.IncomingMessage): RefLogEntry | undefined {
    const h = req.headers[REFLOG_HEADER];
    if (h === undefined) return undefined;
    const m = /^(\d{1,15}) ([A-Za-z0-9%._~!*'()-]{0,12000})$/.exec(String(h));
    let reason: string | undefined;
    try {
      reason = m ? decodeURIComponent(m[2]) : undefined;
    } catch {
      reason = undefined;
    }
    if (!m || reason === undefined) throw new HttpError(400, `${REFLOG_HEADER} must be "<time ms> <percent-encoded reason>"`);
    return { time: Number(m[1]), reason };
  }

  function sendJson(res: http.ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}) {
    const body = Buffer.from(JSON.stringify(value));
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.byteLength, ...headers });
    res.end(body);
    return body.byteLength;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse, counter: { bytes: number }) {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : rawUrl.slice(q + 1));
    const write = method === 'PUT' || method === 'DELETE' || method === 'POST';
    if (!write && method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `method ${method} not allowed`);
    const slash = rawPath.indexOf('/', 1);
    const required = requiredLevel(method, slash < 0 ? '' : rawPath.slice(slash + 1), query);
    authorize(req, required.level, required.what);
    const { store: served, key } = await locate(rawPath);
    const store = served.backend;
    // GET /<repo>/view: the `ckpt view` page, drawn live (src/view/serveView.ts)
    if (key === 'view' && !write) return void (counter.bytes = await serveView(served, rawPath.split('/')[1], res, method === 'HEAD'));

    if (key === '' && (method === 'POST' || (method === 'DELETE' && query.has('lease')))) {
      if (method === 'POST' && query.has('lock')) {
        const mode = query.get('mode') ?? 'shared';
        if (mode !== 'shared' && mode !== 'exclusive') throw new HttpError(400, 'mode must be shared or exclusive');
        const granted = await leases.acquire(served, `${printable(query.get('lock') ?? 'push')} from ${req.socket.remoteAddress ?? '?'}`, mode as LeaseMode);
        sendJson(res, 201, granted);
        return;
      }
      if (method === 'POST' && query.has('renew')) {
        const renewed = await leases.renew(query.get('renew') ?? '', served);
        if (!renewed) throw new HttpError(404, 'no such lease (it lapsed, or its lock was broken)');
        counter.bytes = sendJson(res, 200, renewed);
        return;
      }
      if (method === 'DELETE') {
        await leases.release(query.get('lease') ?? '', served);
        res.writeHead(204).end();
        return;
      }
      throw new HttpError(400, 'expected ?lock=<purpose> or ?renew=<lease>');
    }
    if (method === 'POST') throw new HttpError(405, 'POST is for /<repo>/?lock and ?renew only');

    if (key === '') {
      if (write || !query.has('list')) throw new HttpError(400, 'expected ?list=<prefix>');
      const prefix = query.get('list') ?? '';
      listPrefix(prefix);
      const body = Buffer.from(JSON.stringify(await store.list(prefix)));
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': body.byteLength });
      res.end(method === 'HEAD' ? undefined : body);
      counter.bytes = body.byteLength;
      return;
    }
    const fileKind = parseStoreFileKey(key)?.kind;
    if (fileKind) {
      if (method === 'HEAD') {
        const info = await store.stat(key);
        if (!info) throw new HttpError(404, `no ${key}`);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': info.size }).end();
        return;
      }
      if (method === 'GET') {
        const bytes = await store.readFile(key);
        if (!bytes) throw new HttpError(404, `no ${key}`);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.byteLength });
        res.end(bytes);
        counter.bytes = bytes.byteLength;
        return;
      }
      if (method === 'PUT') {
        if (fileKind === 'log') throw new HttpError(405, 'a reflog grows only by ref updates');
        await store.writeFile(key, await readSmallBody(req, counter, STORE_FILE_MAX, key));
        res.writeHead(204).end();
        return;
      }
      if (fileKind !== 'mark') throw new HttpError(405, `${key} cannot be deleted`);
      await store.delete(key);
      res.writeHead(204).end();
      return;
    }
    const parsed = parseKey(key);
    if (!parsed) throw new HttpError(400, 'not a store key');

    if (parsed.kind === 'ref') {
      if (method === 'HEAD') {
        // the size of what is stored, as for any key: a stat of a damaged ref still answers
        const info = await store.stat(key);
        if (!info) throw new HttpError(404, `no ref ${key}`);
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': info.size }).end();
        return;
      }
      if (method === 'GET') {
        const id = await store.readRef(key);
        if (id === null) throw new HttpError(404, `no ref ${key}`);
        const body = Buffer.from(`${id}\n`);
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.byteLength, ETag: `"${id}"` });
        res.end(body);
        counter.bytes = body.byteLength;
        return;
      }
      const ifMatch = etagId(req.headers['if-match']);
      const ifNoneMatch = req.headers['if-none-match']?.trim();
      if (ifNoneMatch !== undefined && ifNoneMatch !== '*') throw new HttpError(400, 'If-None-Match must be *');
      if ((ifMatch === undefined) === (ifNoneMatch === undefined)) {
        throw new HttpError(428, 'a ref update needs exactly one of If-Match: "<id>" or If-None-Match: *');
      }
      const expected = ifMatch ?? null;
      let next: string | null = null;
      if (method === 'PUT') {
        next = (await readSmallBody(req, counter)).toString('utf8').trim();
        if (!isObjectId(next)) throw new HttpError(400, 'a ref body is one commit id');
        if (verifyRefTargets) {
          try {
            await assertCommitComplete(served, next);
          } catch (e) {
            if (e instanceof CkptError && (e.code === 'E_NOT_FOUND' || e.code === 'E_CORRUPT')) throw new HttpError(424, e.message, { code: e.code });
            throw e;
          }
        }
      } else if (expected === null) {
        throw new HttpError(428, 'deleting a ref needs If-Match');
      }
      const log = reflogEntry(req);
      try {
        await store.casRef(key, expected, next, log);
      } catch (e) {
        if (e instanceof RefConflictError) {
          const actual = e.data.actual as string | null;
          throw new HttpError(412, e.message, { code: e.code, actual }, actual ? { ETag: `"${actual}"` } : {});
        }
        throw e;
      }
      if (next === null) res.writeHead(204).end();
      else res.writeHead(200, { ETag: `"${next}"`, 'Content-Length': 0 }).end();
      return;
    }

    if (method === 'HEAD' && query.has('partial')) {
      // an interrupted upload of this pack: how many bytes of it the server kept
      const kept = parsed.kind === 'pack' ? await store.partialSize(key) : 0;
      if (kept === 0) throw new HttpError(404, `no partial upload of ${key}`);
      res.writeHead(200, { [UPLOAD_OFFSET]: kept, 'Content-Length': 0 }).end();
      return;
    }
    if (method === 'GET' || method === 'HEAD') {
      const info = await store.stat(key);
      if (!info) throw new HttpError(404, `no object ${key}`);
      let start = 0;
      let end = info.size - 1;
      let status = 200;
      const headers: Record<string, string | number> = {
        'Content-Type': 'application/octet-stream',
        'Accept-Ranges': 'bytes',
      };
      const range = req.headers.range;
      if (range !== undefined) {
        const m = /^bytes=(\d+)-(\d*)$/.exec(range.trim());
        if (!m) throw new HttpError(400, 'only one range of the form bytes=a-b is served');
        start = Number(m[1]);
        end = m[2] === '' ? info.size - 1 : Math.min(Number(m[2]), info.size - 1);
        if (start >= info.size || end < start) {
          throw new HttpError(416, 'range not satisfiable', {}, { 'Content-Range': `bytes */${info.size}` });
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${info.size}`;
      }
      const length = Math.max(0, end - start + 1);
      headers['Content-Length'] = length;
      if (method === 'HEAD' || length === 0) {
        res.writeHead(status, headers).end();
        return;
      }
      const fh = await served.openKey(key);
      res.writeHead(status, headers);
      const body = fh.createReadStream({ start, end, highWaterMark: 1 << 20 });
      body.on('data', (c) => (counter.bytes += c.length));
      await pipeline(body, res);
      return;
    }

    if (method === 'DELETE') {
      await store.delete(key);
      res.writeHead(204).end();
      return;
    }

    const max = parsed.kind === 'pack' ? maxBodyBytes : maxSmallBodyBytes;
    const header = req.headers['content-length'];
    const declared = header === undefined ? undefined : Number(header);
    if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) throw new HttpError(400, 'bad Content-Length');
    if (declared !== undefined && declared > max) throw new HttpError(413, `body larger than ${max} bytes (the limit for a ${parsed.kind})`);
    if (uploads >= maxUploads) throw new HttpError(503, `${maxUploads} uploads already in progress; try again`, {}, { 'Retry-After': '1' });
    const offsetHeader = req.headers[UPLOAD_OFFSET];
    const offset = offsetHeader === undefined ? 0 : Number(offsetHeader);
    if (!Number.isSafeInteger(offset) || offset < 0 || (offset > 0 && parsed.kind !== 'pack')) throw new HttpError(400, `bad ${UPLOAD_OFFSET}`);
    if (offset + (declared ?? 0) > max) throw new HttpError(413, `body larger than ${max} bytes (the limit for a ${parsed.kind})`);
    uploads++;
    try {
      const body = limited(req, counter, max - offset, declared);
      // a pack's upload cut midway is kept, so the client can resume it from where it stopped
      const outcome = parsed.kind === 'pack' ? await store.putResumable(key, body, offset) : await store.putStream(key, body);
      res.writeHead(outcome === 'created' ? 201 : 200, { 'Content-Length': 0 }).end();
    } finally {
      uploads--;
    }
  }

  const server = http.createServer({ connectionsCheckingInterval: Math.max(50, Math.min(1000, headersTimeoutMs / 4)) }, (req, res) => {
    const t0 = performance.now();
    const counter = { bytes: 0 };
    if (closing) res.shouldKeepAlive = false;
    res.on('close', () => {
      const entry: RequestLogEntry = {
        method: req.method ?? '?',
        path: printable(req.url ?? ''),
        status: res.statusCode,
        bytes: counter.bytes,
        ms: Math.round(performance.now() - t0),
      };
      log(`${entry.method} ${entry.path} ${entry.status} ${entry.bytes}B ${entry.ms}ms`, entry);
    });
    handle(req, res, counter).catch((e: unknown) => {
      const status = statusOf(e);
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      // an unread request body would be parsed as the next request: Node closes the connection
      // after a response that says so
      const unread = !req.readableEnded;
      const headers: Record<string, string> = { ...(e instanceof HttpError ? e.headers : {}) };
      if (unread) headers.Connection = 'close';
      const message = status === 500 ? 'internal error' : (e as Error).message;
      if (status === 500) process.stderr.write(`ckpt serve: ${(e as Error).stack ?? String(e)}\n`);
      const extra = e instanceof HttpError ? e.extra : {};
      const code = e instanceof CkptError ? e.code : undefined;
      if (req.method === 'HEAD') {
        res.writeHead(status, headers).end();
      } else {
        sendJson(res, status, { error: message, code, ...extra }, headers);
      }
    });
  });
  // uploads of large packs over slow links outlive Node's default 5-minute request timeout, so
  // the whole-request bound is long; slow headers, a quiet connection and a body that stalls
  // (limited(): progress every idle window) are cut much sooner
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = requestTimeoutMs;
  server.setTimeout(idleTimeoutMs);
  server.keepAliveTimeout = Math.min(5000, idleTimeoutMs);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${urlHost}:${addr.port}`,
    port: addr.port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        closing = true;
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          void leases.releaseAll().finally(resolve);
        });
        // keep-alive connections that finish their request afterwards must not hold close() open
        const sweep = setInterval(() => server.closeIdleConnections(), 50);
        sweep.unref();
        server.once('close', () => clearInterval(sweep));
        server.closeIdleConnections();
      });
      return closed;
    },
  };
}
