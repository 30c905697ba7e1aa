/**
 * Object ids: BLAKE3-256 of an object's uncompressed bytes, keyed per kind of object so that a
 * chunk can never share an id with a manifest, tree or commit holding the same bytes.
 */
import { createHasher, deriveKey, keyedBlake3Hex, type Hasher } from './blake3.js';
import { UsageError } from './errors.js';

export type ObjectKind = 'chunk' | 'manifest' | 'tree' | 'commit' | 'pack' | 'index';
export type ObjectId = string;

const KIND_KEYS: Record<ObjectKind, Uint8Array> = {
  chunk: deriveKey('ckpt 2026-11-26 chunk'),
  manifest: deriveKey('ckpt 2026-11-26 manifest'),
  tree: deriveKey('ckpt 2026-11-26 tree'),
  commit: deriveKey('ckpt 2026-11-26 commit'),
  pack: deriveKey('ckpt 2026-11-26 pack'),
  index: deriveKey('ckpt 2026-11-26 index'),
};

export function objectId(kind: ObjectKind, bytes: Uint8Array): ObjectId {
  return keyedBlake3Hex(KIND_KEYS[kind], bytes);
}

/** A streaming hasher for ids of large objects (packs). */
export function objectHasher(kind: ObjectKind): Hasher {
  return createHasher(KIND_KEYS[kind]);
}

const ID_RE = /^[0-9a-f]{64}$/;

export function isObjectId(s: string): boolean {
  return ID_RE.test(s);
}

export function assertObjectId(s: string): ObjectId {
  if (!isObjectId(s)) throw new UsageError(`not an object id: ${JSON.stringify(s)}`);
  return s;
}
