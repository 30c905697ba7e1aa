/**
 * A store in an S3 bucket under a prefix (`s3://bucket/prefix`). S3 is dumb storage, so the
 * client does the checking: a pack is hashed as it is read for upload and the multipart upload
 * is completed only when the hash matches its key; downloads are hashed on the way to disk.
 *
 * Refs use S3 conditional writes (AWS since 2024, MinIO, moto): create with If-None-Match: *,
 * update and delete with If-Match: <etag of the value we compared>. A 412 or 409 means another
 * writer got there first. A store that ignores these headers (s3rver) cannot give
 * compare-and-swap: two racing writers may both appear to succeed.
 *
 * A ref's reflog (`logs/<ref>`) is one object, appended to after the ref moved by rewriting it
 * with If-Match its ETag (again on a 412), so two writers' lines may land in either order; each
 * names the old and new commit. The store files (config, HEAD, marks) are plain objects, written
 * whole. The store's locks are lock objects (s3Locks.ts). Failures worth another attempt (5xx,
 * throttling, a cut connection, a stalled body) are marked transient for retryingBackend.ts, on
 * top of the SDK's own retries of a request.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';
import { CkptError, CorruptObjectError, NotFoundError, UsageError } from '../core/errors.js';
import { logKey, parseKey } from './objectKeys.js';
import {
  checkRange,
  decodeRef,
  deletableKey,
  isListableKey,
  isNetworkFault,
  maxStoreFileBytes,
  statableKey,
  storeFileKey,
  transientError,
  writableStoreFileKey,
  REF_OBJECT_MAX,
  SMALL_OBJECT_MAX,
  type RangeReader,
  type RefLogEntry,
  type RemoteLock,
  encodeRef,
  keyVerifier,
  listPrefix,
  objectKey,
  readableKey,
  refConflict,
  refName,
  remoteError,
  streamToVerifiedFile,
  verifyBytes,
  maxResponseBytes,
  type GetToFileOptions,
  type KeyInfo,
  type PutBody,
  type Backend,
} from './backend.js';
import { clientLimits, guardStream, readGuarded, type StallLimits } from './stallGuard.js';
import { reflogLine } from './reflogLine.js';
import { acquireS3Exclusive, acquireS3Shared, type LockObject, type LockObjectStore, type S3LockOptions } from './s3Locks.js';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3BackendOptions {
  /** Default us-east-1. */
  region?: string;
  /** An S3-compatible server; implies path-style addressing unless forcePathStyle says otherwise. */
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Default: the SDK's standard chain (environment, profile, SSO, instance role). */
  credentials?: S3Credentials;
  /**
   * Multipart part size for files larger than this; default 64 MiB, or `$CKPT_S3_PART_MB` MiB
   * (S3's floor is 5 MiB). An interrupted upload resumes only with the part size it started with.
   */
  partSize?: number;
  /**
   * Files up to this size go in one PutObject (resent whole when cut off), larger ones as
   * multipart uploads; default 256 MiB, or `$CKPT_S3_MULTIPART_MB` MiB, and never below partSize.
   * Against moto a 128 MiB pack took twice as long in two 64 MiB parts as in one PUT.
   */
  multipartThreshold?: number;
  /**
   * Parts uploading at once, across every upload of this backend (a push sends several packs
   * at once); default 2, or `$CKPT_S3_CONCURRENCY`. A part cut off is sent again whole, so this
   * times partSize bounds what a killed push loses.
   */
  concurrency?: number;
  /** The store's lock objects: lease, refresh period, how long to wait (s3Locks.ts). */
  locks?: S3LockOptions;
}

export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
  if (!m) throw new UsageError(`not an s3://bucket/prefix URL: ${url}`);
  const inner = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (inner && inner.split('/').some((p) => p === '' || p === '.' || p === '..')) {
    throw new UsageError(`bad S3 prefix in ${url}`);
  }
  return { bucket: m[1], prefix: inner ? `${inner}/` : '' };
}

interface SdkError {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

const statusOf = (e: unknown) => (e as SdkError)?.$metadata?.httpStatusCode;
/** SDK error names of a failure another attempt may not meet. */
const TRANSIENT_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'SlowDown', 'ThrottlingException', 'Throttling', 'InternalError', 'ServiceUnavailable', 'NetworkingError']);
const isTransientSdkError = (e: unknown) => {
  const status = statusOf(e);
  return (status !== undefined && (status >= 500 || status === 429)) || TRANSIENT_NAMES.has((e as SdkError)?.name ?? '') || isNetworkFault(e) || (e as { $retryable?: unknown })?.$retryable !== undefined;
};
/** Large enough for throughput (and S3's 10,000-part cap up to 640 GiB), small enough to resume cheaply. */
const DEFAULT_PART_SIZE = 64 * 1024 * 1024;
const DEFAULT_MULTIPART_THRESHOLD = 256 * 1024 * 1024;
/**
 * PUTs or parts in flight per backend. Against moto on loopback (which takes writes one at a
 * time) 1, 2 and 4 were within the noise of a loaded machine (4 x 128 MiB packs: 34-39 s,
 * 29-55 s, 39-48 s); 2 keeps a second request ready, and bounds what a killed push loses to two
 * packs or parts.
 */
const DEFAULT_CONCURRENCY = 2;

/** A counting semaphore: at most `n` holders. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async take(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }
  give(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free++;
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LOCK_OBJECT_MAX = 64 * 1024;
const isNotFound = (e: unknown) =>
  statusOf(e) === 404 || (e as SdkError)?.name === 'NoSuchKey' || (e as SdkError)?.name === 'NotFound';
/** 412: the condition failed; 409: AWS saw a concurrent conditional write to the same key. */
const isPreconditionFailed = (e: unknown) => statusOf(e) === 412 || statusOf(e) === 409;

export class S3Backend implements Backend {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly concurrency: number;
  private readonly partSlots: Slots;
  private readonly multipartThreshold: number;
  private readonly limits: StallLimits;
  private readonly lockOptions: S3LockOptions;

  constructor(url: string, options: S3BackendOptions = {}) {
    ({ bucket: this.bucket, prefix: this.prefix } = parseS3Url(url));
    this.url = `s3://${this.bucket}/${this.prefix}`;
    const envPart = Number(process.env.CKPT_S3_PART_MB);
    this.partSize = options.partSize ?? (Number.isFinite(envPart) && envPart > 0 ? Math.round(envPart * 1024 * 1024) : DEFAULT_PART_SIZE);
    if (this.partSize < 5 * 1024 * 1024) throw new UsageError('S3 parts must be at least 5 MiB');
    const envThreshold = Number(process.env.CKPT_S3_MULTIPART_MB);
    this.multipartThreshold = Math.max(
      this.partSize,
      options.multipartThreshold ?? (Number.isFinite(envThreshold) && envThreshold > 0 ? Math.round(envThreshold * 1024 * 1024) : DEFAULT_MULTIPART_THRESHOLD),
    );
    const envConcurrency = Number(process.env.CKPT_S3_CONCURRENCY);
    this.concurrency = Math.max(1, options.concurrency ?? (Number.isSafeInteger(envConcurrency) && envConcurrency > 0 ? envConcurrency : DEFAULT_CONCURRENCY));
    this.partSlots = new Slots(this.concurrency);
    this.limits = clientLimits();
    this.lockOptions = options.locks ?? {};
    this.client = new S3Client({
      // a server that accepts the connection and then says nothing is given up on, as over HTTP
      requestHandler: { requestTimeout: this.limits.stallMs, connectionTimeout: this.limits.stallMs },
      region: options.region ?? 'us-east-1',
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      credentials: options.credentials,
    });
  }

  private fail(e: unknown, what: string, key?: string): Error {
    if (e instanceof CkptError) return e;
    const err = e as SdkError;
    const status = statusOf(e);
    const name = err?.name ?? 'Error';
    if (status === 401 || status === 403) {
      return new CkptError('E_AUTH', `${this.url}: ${what}: access denied (${name}); check the S3 credentials`, {
        url: this.url,
        key,
        status,
      });
    }
    if (name === 'NoSuchBucket') return remoteError(this.url, `bucket ${this.bucket} does not exist`, { key });
    if (isTransientSdkError(e)) return transientError(this.url, `${what}: ${name}: ${err?.message ?? String(e)}`, { key, status });
    return remoteError(this.url, `${what}: ${name}: ${err?.message ?? String(e)}`, { key, status });
  }

  private notFound(key: string): NotFoundError {
    return new NotFoundError(`${key} in ${this.url}`, { key, remote: this.url });
  }

  async list(prefix: string): Promise<KeyInfo[]> {
    listPrefix(prefix);
    const out: KeyInfo[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token }),
        );
      } catch (e) {
        throw this.fail(e, `list ${prefix}`);
      }
      for (const o of page.Contents ?? []) {
        const key = (o.Key ?? '').slice(this.prefix.length);
        if (key.startsWith(prefix) && isListableKey(key)) out.push({ key, size: o.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async stat(key: string): Promise<KeyInfo | undefined> {
    statableKey(key);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
      return { key, size: r.ContentLength ?? 0 };
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.fail(e, `stat ${key}`, key);
    }
  }

  private async getObject(key: string, range?: string) {
    try {
      return await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Range: range }));
    } catch (e) {
      if (isNotFound(e)) throw this.notFound(key);
      if (statusOf(e) === 416) throw remoteError(this.url, `range ${range} runs past the end of ${key}`, { key });
      throw this.fail(e, `get ${key}`, key);
    }
  }

  async get(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    readableKey(key);
    if (!range) {
      const r = await this.getObject(key);
      const bytes = await this.readBody(r.Body as Readable, maxResponseBytes(key), key, r.ContentLength);
      verifyBytes(key, bytes, this.url);
      return bytes;
    }
    checkRange(range);
    const { offset, length } = range;
    if (length === 0) {
      if (!(await this.stat(key))) throw this.notFound(key);
      return new Uint8Array(0);
    }
    const r = await this.getObject(key, `bytes=${offset}-${offset + length - 1}`);
    let bytes: Uint8Array = await this.readBody(r.Body as Readable, offset + length, `range ${offset}+${length} of ${key}`, r.ContentLength);
    // some S3-compatible servers send more than asked: the whole object (no Content-Range), or
    // everything from the offset on (s3rver reads bytes=0-0 as bytes=0-)
    if (bytes.byteLength > length) {
      const start = r.ContentRange === undefined ? 0 : Number(/^bytes (\d+)-/.exec(r.ContentRange)?.[1]);
      if (start <= offset) bytes = bytes.subarray(offset - start, offset - start + length);
    }
    // S3 answers a range that overhangs the end with what there is
    if (bytes.byteLength !== length) {
      throw remoteError(this.url, `range ${offset}+${length} runs past the end of ${key}`, { key });
    }
    return bytes;
  }

  /** A body read whole under the stall guard, at most `max` bytes. */
  private async readBody(body: Readable, max: number, what: string, declared: number | undefined): Promise<Buffer> {
    try {
      return await readGuarded(body, { ...this.limits, max, declared, what: `${this.url}: ${what}` });
    } catch (e) {
      throw this.fail(e, `read ${what}`, what);
    }
  }

  /** A body cut or stalled mid-way is transient: retryingBackend.ts downloads it again. */
  async getToFile(key: string, dest: string, opts: GetToFileOptions = {}): Promise<void> {
    readableKey(key);
    const r = await this.getObject(key);
    const body = r.Body as Readable;
    try {
      if (opts.size !== undefined && r.ContentLength !== undefined && r.ContentLength !== opts.size) {
        throw remoteError(this.url, `${key} has ${r.ContentLength} bytes, its index says ${opts.size}`, { key });
      }
      const max = opts.size ?? (parseKey(key)?.kind === 'pack' ? Number.MAX_SAFE_INTEGER : maxResponseBytes(key));
      await streamToVerifiedFile(key, guardStream(body, { ...this.limits, max, expected: opts.size, what: `${this.url}: ${key}` }), dest, this.url, opts.onReceived);
    } catch (e) {
      body.destroy();
      throw this.fail(e, `download ${key}`, key);
    }
  }

  /** Ranged GetObjects of one object, whose size is learnt once. */
  async openRanges(key: string): Promise<RangeReader> {
    readableKey(key);
    const info = await this.stat(key);
    if (!info) throw this.notFound(key);
    return {
      read: async (offset, length) => {
        checkRange({ offset, length });
        if (offset + length > info.size) throw remoteError(this.url, `range ${offset}+${length} runs past the end of ${key}`, { key });
        if (length === 0) return new Uint8Array(0);
        return this.get(key, { offset, length });
      },
      close: async () => undefined,
    };
  }

  async put(key: string, body: PutBody): Promise<void> {
    objectKey(key);
    if ('bytes' in body) {
      verifyBytes(key, body.bytes, 'upload');
      await this.putSmall(key, body.bytes);
      return;
    }
    if (await this.stat(key)) return;
    await this.putFile(key, body.file, body.onSent);
  }

  /** One PutObject. If-None-Match keeps an existing object untouched: a 412 means it is there. */
  private async putSmall(key: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.prefix + key,
          Body: bytes,
          ContentLength: bytes.byteLength,
          ContentType: 'application/octet-stream',
          IfNoneMatch: '*',
        }),
      );
    } catch (e) {
      if (statusOf(e) === 412) return;
      throw this.fail(e, `put ${key}`, key);
    }
  }

  /**
   * Reads the file once, in part-sized buffers, hashing each and uploading up to `concurrency`
   * at a time; the upload is completed (made visible) only when the whole file hashed to its
   * key. An upload of the same key left unfinished (a push killed or cut off) is resumed: its
   * parts whose size and ETag (the MD5 of the part, hashed here from the local file) match are
   * kept, the others sent again. A failure that another attempt cannot fix aborts the upload.
   */
  private async putFile(key: string, file: string, onSent?: (bytes: number) => void): Promise<void> {
    const fh = await fs.open(file, 'r');
    try {
      const size = (await fh.stat()).size;
      const verifier = keyVerifier(key);
      const readAt = async (offset: number, length: number) => {
        const buf = Buffer.allocUnsafe(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) throw new CkptError('E_IO', `${file} shrank while it was uploaded`, { file });
          got += bytesRead;
        }
        return buf;
      };
      if (size <= this.multipartThreshold) {
        const bytes = await readAt(0, size);
        verifier.update(bytes);
        verifier.finish(file);
        await this.partSlots.take();
        try {
          await this.putSmall(key, bytes);
        } finally {
          this.partSlots.give();
        }
        onSent?.(size);
        return;
      }
      const Key = this.prefix + key;
      const resumed = await this.unfinishedUpload(Key, size);
      let uploadId = resumed?.uploadId;
      if (!uploadId) {
        try {
          ({ UploadId: uploadId } = await this.client.send(
            new CreateMultipartUploadCommand({ Bucket: this.bucket, Key, ContentType: 'application/octet-stream' }),
          ));
        } catch (e) {
          throw this.fail(e, `start upload of ${key}`, key);
        }
      }
      const had = resumed?.parts ?? new Map<number, string>();
      const parts: CompletedPart[] = [];
      const inflight = new Set<Promise<void>>();
      let failure: unknown;
      try {
        for (let offset = 0, n = 1; offset < size; offset += this.partSize, n++) {
          const bytes = await readAt(offset, Math.min(this.partSize, size - offset));
          verifier.update(bytes);
          const partNumber = n;
          const etag = had.get(partNumber);
          if (etag !== undefined && etag === `"${createHash('md5').update(bytes).digest('hex')}"`) {
            parts[partNumber - 1] = { PartNumber: partNumber, ETag: etag };
            onSent?.(bytes.byteLength);
            continue;
          }
          await this.partSlots.take();
          const p: Promise<void> = this.client
            .send(
              new UploadPartCommand({
                Bucket: this.bucket,
                Key,
                UploadId: uploadId,
                PartNumber: partNumber,
                Body: bytes,
                ContentLength: bytes.byteLength,
              }),
            )
            .finally(() => this.partSlots.give())
            .then(
              (r) => {
                parts[partNumber - 1] = { PartNumber: partNumber, ETag: r.ETag };
                onSent?.(bytes.byteLength);
              },
              (e: unknown) => void (failure ??= e),
            )
            .finally(() => inflight.delete(p));
          inflight.add(p);
          if (inflight.size >= this.concurrency) await Promise.race(inflight);
          if (failure) throw failure;
        }
        await Promise.all(inflight);
        if (failure) throw failure;
        verifier.finish(file);
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
            IfNoneMatch: '*',
          }),
        );
      } catch (e) {
        await Promise.allSettled(inflight);
        if (statusOf(e) === 412) return; // someone else stored the same object meanwhile
        // another pusher of the same pack may have completed (and so ended) the upload we resumed
        if ((e as SdkError)?.name === 'NoSuchUpload' && (await this.stat(key).catch(() => undefined))?.size === size) return;
        // a transient failure keeps the parts sent, for the retry (or the next push) to resume
        if (!(isTransientSdkError(e) || (e instanceof CkptError && e.data.transient === true))) {
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key, UploadId: uploadId })).catch(() => undefined);
        }
        throw this.fail(e, `upload ${key}`, key);
      }
    } finally {
      await fh.close();
    }
  }

  /**
   * The newest unfinished multipart upload of `Key` whose parts fit this client's part size for
   * a file of `size` bytes, with the ETag of each part the bucket has; undefined when none.
   */
  private async unfinishedUpload(Key: string, size: number): Promise<{ uploadId: string; parts: Map<number, string> } | undefined> {
    let uploads;
    try {
      uploads = (await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: Key }))).Uploads ?? [];
    } catch {
      return undefined; // a server without the listing: start afresh
    }
    const mine = uploads.filter((u) => u.Key === Key && u.UploadId).sort((a, b) => (b.Initiated?.getTime() ?? 0) - (a.Initiated?.getTime() ?? 0));
    const lastPart = Math.ceil(size / this.partSize);
    for (const u of mine) {
      const parts = new Map<number, string>();
      let marker: string | undefined;
      try {
        do {
          const page = await this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key, UploadId: u.UploadId, PartNumberMarker: marker }));
          for (const p of page.Parts ?? []) {
            const n = p.PartNumber ?? 0;
            const want = n === lastPart ? size - (lastPart - 1) * this.partSize : this.partSize;
            if (n >= 1 && n <= lastPart && p.Size === want && p.ETag) parts.set(n, p.ETag);
          }
          marker = page.IsTruncated ? page.NextPartNumberMarker : undefined;
        } while (marker);
      } catch {
        continue; // completed or aborted meanwhile
      }
      if (parts.size > 0) return { uploadId: u.UploadId!, parts };
    }
    return undefined;
  }

  async delete(key: string): Promise<void> {
    deletableKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (e) {
      if (!isNotFound(e)) throw this.fail(e, `delete ${key}`, key);
    }
  }

  /** An object's bytes and ETag, at most `max` bytes (else `tooLarge`), or null when missing. */
  private async readTagged(key: string, max: number, tooLarge?: (size: number) => Error): Promise<{ bytes: Buffer; etag: string } | null> {
    let r;
    try {
      r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (e) {
      if (isNotFound(e)) return null;
      throw this.fail(e, `read ${key}`, key);
    }
    const body = r.Body as Readable;
    if (tooLarge && r.ContentLength !== undefined && r.ContentLength > max) {
      body.destroy();
      throw tooLarge(r.ContentLength);
    }
    const bytes = await this.readBody(body, max, key, r.ContentLength);
    if (!r.ETag) throw remoteError(this.url, `no ETag on ${key}: the server cannot do compare-and-swap`);
    return { bytes, etag: r.ETag };
  }

  private async readRefTagged(ref: string): Promise<{ id: string; etag: string } | null> {
    const got = await this.readTagged(ref, REF_OBJECT_MAX, (size) => new CorruptObjectError(ref, this.url, `a ref must hold one commit id, not ${size} bytes`));
    return got && { id: decodeRef(ref, got.bytes), etag: got.etag };
  }

  async readRef(ref: string): Promise<string | null> {
    refName(ref);
    return (await this.readRefTagged(ref))?.id ?? null;
  }

  async casRef(ref: string, expected: string | null, next: string | null, log?: RefLogEntry): Promise<void> {
    refName(ref);
    if (expected !== null) encodeRef(expected);
    const body = next === null ? undefined : encodeRef(next);
    const current = await this.readRefTagged(ref);
    if ((current?.id ?? null) !== expected) throw refConflict(ref, expected, current?.id ?? null);
    const Key = this.prefix + ref;
    try {
      if (body) {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: body,
            ContentType: 'text/plain',
            ...(current ? { IfMatch: current.etag } : { IfNoneMatch: '*' }),
          }),
        );
      } else if (current) {
        await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key, IfMatch: current.etag }));
      }
    } catch (e) {
      if (!isPreconditionFailed(e) && !(next === null && isNotFound(e))) throw this.fail(e, `update ${ref}`, ref);
      const now = await this.readRef(ref);
      // the SDK retries a write whose answer was lost; the retry then fails its own condition
      if (now !== next) throw refConflict(ref, expected, now);
    }
    if (log && (expected !== null || next !== null)) {
      try {
        await this.appendLog(ref, reflogLine(expected, next, log));
      } catch (e) {
        // not transient: a retry of the whole update would find the ref moved and append nothing
        throw new CkptError('E_REMOTE', `${this.url}: ${ref} moved to ${next ?? '(deleted)'}, but its reflog entry could not be written: ${(e as Error).message}`, {
          url: this.url,
          ref,
          refMoved: true,
        });
      }
    }
  }

  /**
   * Appends one line to a ref's reflog object: read it with its ETag, write it back longer with
   * If-Match (If-None-Match: * when new), again from the read when another writer got there
   * first. A line found already there was written by an earlier attempt whose answer was lost.
   */
  private async appendLog(ref: string, line: string): Promise<void> {
    const key = logKey(ref);
    const mine = Buffer.from(line, 'utf8');
    let faults = 0;
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        const cur = await this.readTagged(key, SMALL_OBJECT_MAX);
        if (attempt > 0 && cur && cur.bytes.indexOf(mine) >= 0) return;
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key: this.prefix + key,
            Body: cur ? Buffer.concat([cur.bytes, mine]) : mine,
            ContentType: 'text/plain',
            ...(cur ? { IfMatch: cur.etag } : { IfNoneMatch: '*' }),
          }),
        );
        return;
      } catch (e) {
        const raced = isPreconditionFailed(e) || isNotFound(e);
        if (!raced && !(isTransientSdkError(e) || (e instanceof CkptError && e.data.transient === true)) ) throw this.fail(e, `append to ${key}`, key);
        if (!raced && ++faults > 3) throw this.fail(e, `append to ${key}`, key);
        await sleep(10 + Math.random() * (raced ? 50 : 500));
      }
    }
    throw remoteError(this.url, `${key}: too many writers appending at once`, { key });
  }

  async readFile(key: string): Promise<Uint8Array | undefined> {
    storeFileKey(key);
    let r;
    try {
      r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.prefix + key }));
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw this.fail(e, `read ${key}`, key);
    }
    return this.readBody(r.Body as Readable, maxStoreFileBytes(key), key, r.ContentLength);
  }

  /** A plain PutObject: S3 replaces an object whole, so a reader sees the old bytes or the new. */
  async writeFile(key: string, bytes: Uint8Array): Promise<void> {
    writableStoreFileKey(key);
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.prefix + key, Body: bytes, ContentLength: bytes.byteLength, ContentType: 'application/octet-stream' }));
    } catch (e) {
      throw this.fail(e, `write ${key}`, key);
    }
  }

  lockShared(purpose: string): Promise<RemoteLock> {
    return acquireS3Shared(this.lockObjects(), this.url, purpose, this.lockOptions);
  }

  lockExclusive(purpose: string): Promise<RemoteLock> {
    return acquireS3Exclusive(this.lockObjects(), this.url, purpose, this.lockOptions);
  }

  /** Conditional operations on lock objects (keys under locks/, never store keys). */
  private lockObjects(): LockObjectStore {
    const Bucket = this.bucket;
    const full = (key: string) => this.prefix + key;
    const etagOf = (etag: string | undefined, key: string) => {
      if (!etag) throw remoteError(this.url, `no ETag on ${key}: the server cannot do compare-and-swap`);
      return etag;
    };
    return {
      create: async (key, body) => {
        try {
          const r = await this.client.send(new PutObjectCommand({ Bucket, Key: full(key), Body: body, ContentType: 'application/json', IfNoneMatch: '*' }));
          return etagOf(r.ETag, key);
        } catch (e) {
          if (isPreconditionFailed(e)) return undefined;
          throw this.fail(e, `create ${key}`, key);
        }
      },
      replace: async (key, body, etag) => {
        try {
          const r = await this.client.send(new PutObjectCommand({ Bucket, Key: full(key), Body: body, ContentType: 'application/json', IfMatch: etag }));
          return etagOf(r.ETag, key);
        } catch (e) {
          if (isPreconditionFailed(e) || isNotFound(e)) return undefined;
          throw this.fail(e, `refresh ${key}`, key);
        }
      },
      read: async (key) => {
        let r;
        try {
          r = await this.client.send(new GetObjectCommand({ Bucket, Key: full(key) }));
        } catch (e) {
          if (isNotFound(e)) return undefined;
          throw this.fail(e, `read ${key}`, key);
        }
        const bytes = await this.readBody(r.Body as Readable, LOCK_OBJECT_MAX, key, r.ContentLength);
        return { key, etag: etagOf(r.ETag, key), lastModified: r.LastModified?.getTime() ?? Date.now(), body: bytes.toString('utf8') };
      },
      list: async (prefix) => {
        const out: LockObject[] = [];
        let token: string | undefined;
        do {
          let page;
          try {
            page = await this.client.send(new ListObjectsV2Command({ Bucket, Prefix: full(prefix), ContinuationToken: token }));
          } catch (e) {
            throw this.fail(e, `list ${prefix}`);
          }
          for (const o of page.Contents ?? []) {
            const key = (o.Key ?? '').slice(this.prefix.length);
            if (key.startsWith(prefix) && key.endsWith('.lock')) out.push({ key, etag: o.ETag ?? '', lastModified: o.LastModified?.getTime() ?? Date.now() });
          }
          token = page.IsTruncated ? page.NextContinuationToken : undefined;
        } while (token);
        return out;
      },
      remove: async (key, etag) => {
        try {
          await this.client.send(new DeleteObjectCommand({ Bucket, Key: full(key), ...(etag ? { IfMatch: etag } : {}) }));
        } catch (e) {
          if (isPreconditionFailed(e) || isNotFound(e)) return;
          throw this.fail(e, `remove ${key}`, key);
        }
      },
    };
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
