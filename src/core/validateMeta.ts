/**
 * Shape checks for metadata objects that arrive from elsewhere (a remote, a damaged store).
 * Their bytes hash to their id, but the id says nothing about whether the content is sane: a
 * ref can name a tree, a manifest can carry a chunk size of -1. Nothing received becomes a
 * setting or drives a loop before it passes these. Each fault is E_CORRUPT naming the object.
 */
import { decodeCanonical } from './canonical.js';
import { CkptError } from './errors.js';
import { isObjectId, type ObjectId } from './objectId.js';
import type { Commit, Manifest, MetaObject, Tree } from './objects.js';
import { validateTree } from './treePath.js';

/** The bounds a store's chunk size obeys (storeConfig.validateChunkSize), for received manifests. */
export const MIN_CHUNK_SIZE = 4096;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;

export function isValidChunkSize(n: unknown): n is number {
  return Number.isSafeInteger(n) && (n as number) >= MIN_CHUNK_SIZE && (n as number) <= MAX_CHUNK_SIZE && ((n as number) & ((n as number) - 1)) === 0;
}

const corrupt = (id: string, detail: string, data: Record<string, unknown> = {}) =>
  new CkptError('E_CORRUPT', `object ${id}: ${detail}`, { id, detail, ...data });

const isSize = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

function decode(id: ObjectId, bytes: Uint8Array): { type?: unknown } {
  let v: unknown;
  try {
    v = decodeCanonical(bytes);
  } catch {
    throw corrupt(id, 'not valid msgpack');
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw corrupt(id, 'not a metadata object');
  return v as { type?: unknown };
}

function expectKind(id: ObjectId, v: { type?: unknown }, kind: MetaObject['type'], context: string | undefined): void {
  if (v.type !== kind) {
    const is = typeof v.type === 'string' ? `a ${v.type}` : 'of no known kind';
    throw corrupt(id, `${context ? `${context} names it as a ${kind}, but it` : 'it'} is ${is}, not a ${kind}`, { expected: kind, actual: v.type });
  }
}

/** Decodes and checks a commit; `context` says who named it (a ref, a parent link). */
export function decodeCommit(id: ObjectId, bytes: Uint8Array, context?: string): Commit {
  const v = decode(id, bytes) as Partial<Commit>;
  expectKind(id, v, 'commit', context);
  if (typeof v.tree !== 'string' || !isObjectId(v.tree)) throw corrupt(id, 'commit names no valid tree');
  if (!Array.isArray(v.parents) || !v.parents.every((p) => typeof p === 'string' && isObjectId(p))) throw corrupt(id, 'commit parents are malformed');
  if (v.code?.files !== undefined && (typeof v.code.files !== 'string' || !isObjectId(v.code.files))) throw corrupt(id, 'commit code tree is malformed');
  return v as Commit;
}

export function decodeTree(id: ObjectId, bytes: Uint8Array, commit?: ObjectId): Tree {
  return validateTree<Tree>(decode(id, bytes), id, commit);
}

/** Checks a decoded manifest: its kind, sizes, chunk size and every chunk reference. */
export function validateManifest(id: ObjectId, v: unknown, context?: string): Manifest {
  const m = v as Partial<Manifest> & { type?: unknown };
  if (!m || typeof m !== 'object') throw corrupt(id, 'not a metadata object');
  expectKind(id, m, 'manifest', context);
  if (!isSize(m.size) || typeof m.hash !== 'string' || typeof m.format !== 'string') throw corrupt(id, 'manifest size, hash or format is malformed');
  if (!isValidChunkSize(m.chunkSize)) {
    throw corrupt(id, `manifest chunk size ${JSON.stringify(m.chunkSize)} is not a power of two between 4 KiB and 64 MiB`, { chunkSize: m.chunkSize });
  }
  if (!Array.isArray(m.segments)) throw corrupt(id, 'manifest segments are malformed');
  for (const s of m.segments) {
    if (!s || typeof s !== 'object' || (s.t !== 'bytes' && s.t !== 'tensor') || !isSize(s.len) || !Array.isArray(s.chunks)) {
      throw corrupt(id, 'manifest segment is malformed');
    }
    for (const c of s.chunks) {
      if (!Array.isArray(c) || typeof c[0] !== 'string' || !isObjectId(c[0]) || !isSize(c[1])) throw corrupt(id, 'manifest chunk reference is malformed');
    }
  }
  return m as Manifest;
}

export function decodeManifest(id: ObjectId, bytes: Uint8Array, context?: string): Manifest {
  return validateManifest(id, decode(id, bytes), context);
}
