/**
 * Keys of a store, the same in a local `.ckpt/`, a directory remote, an S3 prefix and the HTTP
 * server. Every key under objects/ names its content, so any side can verify bytes against the
 * key alone.
 *
 *   objects/packs/<id>.pack   id = objectId('pack', file bytes)
 *   objects/index/<id>.idx    id = objectId('index', file bytes)
 *   objects/meta/<2>/<62>     id = objectId(obj.type, bytes) where type is manifest|tree|commit
 *   refs/heads/<name>, refs/tags/<name>   a commit id and a newline
 *   refs/parts/<group>/<rank>             the same: a part of a many-rank commit, awaiting its group
 *   refs/remotes/<remote>/<branch>        the same: remote-tracking (a local store's own)
 *
 * Beside them, the store's small mutable files (parseStoreFileKey): `config`, `HEAD`, the reflog
 * of each ref at `logs/<ref>`, and retention marks at `pruned/<commit id>`.
 */
import { decodeCanonical } from '../core/canonical.js';
import { CkptError, CorruptObjectError } from '../core/errors.js';
import { objectId, type ObjectId, type ObjectKind } from '../core/objectId.js';

export const packKey = (id: ObjectId) => `objects/packs/${id}.pack`;
export const indexKey = (id: ObjectId) => `objects/index/${id}.idx`;
export const metaKey = (id: ObjectId) => `objects/meta/${id.slice(0, 2)}/${id.slice(2)}`;

export type KeyKind = 'pack' | 'index' | 'meta' | 'ref';

export interface ParsedKey {
  kind: KeyKind;
  /** Object id, or the ref name (refs/heads/main) for refs. */
  name: string;
}

const PACK_RE = /^objects\/packs\/([0-9a-f]{64})\.pack$/;
const INDEX_RE = /^objects\/index\/([0-9a-f]{64})\.idx$/;
const META_RE = /^objects\/meta\/([0-9a-f]{2})\/([0-9a-f]{62})$/;
const REF_RE = /^refs\/(heads|tags|parts|remotes)\/[^\x00-\x1f\x7f\\:*?[~^]{1,228}$/;

/** Parses a store key; undefined for anything that is not one (including `..` and absolute paths). */
export function parseKey(key: string): ParsedKey | undefined {
  let m = PACK_RE.exec(key);
  if (m) return { kind: 'pack', name: m[1] };
  m = INDEX_RE.exec(key);
  if (m) return { kind: 'index', name: m[1] };
  m = META_RE.exec(key);
  if (m) return { kind: 'meta', name: m[1] + m[2] };
  if (REF_RE.test(key) && isSafeRefName(key)) return { kind: 'ref', name: key };
  return undefined;
}

export type StoreFileKind = 'config' | 'head' | 'log' | 'mark';

export const logKey = (ref: string) => `logs/${ref}`;
export const markKey = (id: ObjectId) => `pruned/${id}`;

const MARK_RE = /^pruned\/([0-9a-f]{64})$/;

/**
 * Parses the key of one of the store's small mutable files: `config`, `HEAD`, `logs/<ref>` (the
 * reflog of a ref; name is the ref) or `pruned/<commit id>`; undefined for anything else.
 */
export function parseStoreFileKey(key: string): { kind: StoreFileKind; name: string } | undefined {
  if (key === 'config') return { kind: 'config', name: key };
  if (key === 'HEAD') return { kind: 'head', name: key };
  if (key.startsWith('logs/')) {
    const ref = key.slice(5);
    const parsed = parseKey(ref);
    return parsed?.kind === 'ref' ? { kind: 'log', name: ref } : undefined;
  }
  const m = MARK_RE.exec(key);
  return m ? { kind: 'mark', name: m[1] } : undefined;
}

/** Ref names as Git allows them, minus anything that could escape a directory. */
export function isSafeRefName(ref: string): boolean {
  if (ref.includes('..') || ref.includes('//') || ref.endsWith('/') || ref.endsWith('.lock')) return false;
  return ref.split('/').every((p) => p.length > 0 && !p.startsWith('.'));
}

export const META_KINDS: ReadonlySet<string> = new Set(['manifest', 'tree', 'commit']);

/** The id these bytes have under this key's rules, or undefined when the key names no object. */
export function contentIdForKey(kind: KeyKind, bytes: Uint8Array): ObjectId | undefined {
  if (kind === 'pack') return objectId('pack', bytes);
  if (kind === 'index') return objectId('index', bytes);
  if (kind === 'meta') {
    let type: unknown;
    try {
      type = (decodeCanonical<{ type?: unknown }>(bytes) ?? {}).type;
    } catch {
      return undefined;
    }
    if (typeof type !== 'string' || !META_KINDS.has(type)) return undefined;
    return objectId(type as ObjectKind, bytes);
  }
  return undefined;
}

/** Throws unless `bytes` is exactly what `key` names. Refs must hold one commit id. */
export function verifyObjectKey(key: string, bytes: Uint8Array): void {
  const parsed = parseKey(key);
  if (!parsed) throw new CkptError('E_USAGE', `not a store key: ${key}`, { key });
  if (parsed.kind === 'ref') {
    const text = Buffer.from(bytes).toString('utf8');
    if (!/^[0-9a-f]{64}\n?$/.test(text)) throw new CorruptObjectError(key, key, 'a ref must hold one commit id');
    return;
  }
  const id = contentIdForKey(parsed.kind, bytes);
  if (id !== parsed.name) throw new CorruptObjectError(parsed.name, key);
}
