/**
 * Bounds on a stream from a peer we do not trust: at most `max` bytes, and progress in every
 * window of `stallMs`, else the stream is destroyed with a StallError. Progress means the rest
 * of the body, or at least MIN_PROGRESS bytes: a peer that drips a byte a second is as stalled
 * as one that sends nothing. An overall deadline ends even a steady crawl.
 *
 * Clients take their limits from the environment (CKPT_STALL_TIMEOUT and CKPT_DEADLINE, in
 * seconds) unless given; the server takes them from its options.
 */
import type { Readable } from 'node:stream';
import { CkptError } from '../core/errors.js';

export const MIN_PROGRESS = 64 * 1024;
const DEFAULT_STALL_S = 60;
const DEFAULT_DEADLINE_S = 6 * 3600;

export class StallError extends CkptError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('E_REMOTE', message, { stalled: true, ...data });
    this.name = 'StallError';
  }
}

export class TooLargeError extends CkptError {
  constructor(what: string, max: number) {
    super('E_REMOTE', `${what}: more than the ${max} bytes it may have`, { max });
    this.name = 'TooLargeError';
  }
}

function seconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new CkptError('E_USAGE', `${name} must be a positive number of seconds, got ${JSON.stringify(raw)}`);
  return n;
}

export interface StallLimits {
  stallMs: number;
  deadlineMs: number;
}

/** A client's limits: CKPT_STALL_TIMEOUT (default 60 s) and CKPT_DEADLINE (default 6 h). */
export function clientLimits(given: Partial<StallLimits> = {}): StallLimits {
  return {
    stallMs: given.stallMs ?? seconds('CKPT_STALL_TIMEOUT', DEFAULT_STALL_S) * 1000,
    deadlineMs: given.deadlineMs ?? seconds('CKPT_DEADLINE', DEFAULT_DEADLINE_S) * 1000,
  };
}

export interface GuardOptions extends StallLimits {
  /** Most bytes the stream may carry. */
  max: number;
  /** Bytes the body must have exactly (a range, an index's pack size), when known. */
  expected?: number;
  /** Bytes the peer announced (Content-Length): over `max` is refused before reading. */
  declared?: number;
  /** What is being read, for messages. */
  what: string;
  /** When the deadline started (default now). */
  startedAt?: number;
}

/**
 * Yields the stream's chunks under the guard's bounds. On a fault the stream is destroyed and
 * the iteration throws a StallError or TooLargeError.
 */
export function guardStream(stream: Readable, o: GuardOptions): AsyncGenerator<Uint8Array> {
  if ((o.declared ?? 0) > o.max || (o.expected ?? 0) > o.max) {
    stream.destroy();
    throw new TooLargeError(`${o.what} (${o.declared ?? o.expected} bytes announced)`, o.max);
  }
  return guarded(stream, { ...o, expected: o.expected ?? o.declared });
}

async function* guarded(stream: Readable, o: GuardOptions): AsyncGenerator<Uint8Array> {
  const bound = o.expected ?? o.max;
  let total = 0;
  let inWindow = 0;
  let fault: Error | undefined;
  const deadline = (o.startedAt ?? Date.now()) + o.deadlineMs;
  const fail = (e: Error) => {
    fault ??= e;
    stream.destroy(e);
  };
  const timer = setInterval(() => {
    if (Date.now() > deadline) fail(new StallError(`${o.what}: not finished within the ${Math.round(o.deadlineMs / 1000)} s deadline`));
    else if (inWindow < Math.min(MIN_PROGRESS, bound - total + 1)) {
      fail(new StallError(`${o.what}: stalled (${inWindow} bytes in ${o.stallMs} ms)`, { bytes: total }));
    }
    inWindow = 0;
  }, o.stallMs);
  timer.unref();
  try {
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      total += chunk.byteLength;
      inWindow += chunk.byteLength;
      if (total > bound) {
        // not destroyed: the reader stops here, and a server can still answer 413 before closing
        fault ??= o.expected !== undefined && total <= o.max ? new StallError(`${o.what}: more bytes than the ${o.expected} announced`) : new TooLargeError(o.what, bound);
        throw fault;
      }
      yield chunk;
    }
  } catch (e) {
    throw fault ?? e;
  } finally {
    clearInterval(timer);
  }
  if (fault) throw fault;
  if (o.expected !== undefined && total !== o.expected) {
    throw new StallError(`${o.what}: the body ended after ${total} of ${o.expected} bytes`, { bytes: total });
  }
}

/** Reads a guarded stream whole (small bodies only: the bound is the caller's). */
export async function readGuarded(stream: Readable, o: GuardOptions): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of guardStream(stream, o)) parts.push(c);
  return Buffer.concat(parts);
}
