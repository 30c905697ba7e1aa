/**
 * Metadata objects (manifests, trees, commits) at `objects/meta/<2>/<62>` of the store's backend,
 * canonical msgpack named by objectId(type, bytes). Written once, never overwritten, verified on
 * every read.
 */
import { decodeCanonical, encodeCanonical } from '../core/canonical.js';
import { CkptError, CorruptObjectError, NotFoundError } from '../core/errors.js';
import { objectId, type ObjectId } from '../core/objectId.js';
import type { Commit, MetaObject } from '../core/objects.js';
import type { CommitCache } from './commitCache.js';
import type { UsageRecorder } from './usageRecorder.js';
import { whereIs, type Backend } from '../backend/backend.js';
import { META_KINDS, metaKey } from '../backend/objectKeys.js';

const META_PREFIX = 'objects/meta/';

export class MetaStore {
  /** A local store's cache of commits for history display (commitCache.ts). */
  commitCache: CommitCache | undefined;
  /** A local store's record of what it wrote, for du (usageRecorder.ts). */
  usage: UsageRecorder | undefined;

  constructor(private readonly backend: Backend) {}

  /** Where the object lives, for messages: the backend's URL and its key. */
  where(id: ObjectId): string {
    return whereIs(this.backend, metaKey(id));
  }

  static encode(obj: MetaObject): { id: ObjectId; bytes: Uint8Array } {
    const bytes = encodeCanonical(obj);
    return { id: objectId(obj.type, bytes), bytes };
  }

  async put(obj: MetaObject): Promise<ObjectId> {
    const { id, bytes } = MetaStore.encode(obj);
    await this.putRaw(id, bytes);
    if (obj.type === 'commit') await this.commitCache?.append(id, bytes);
    await this.usage?.wrote(id, obj, bytes.length, (t) => this.get(t, 'tree'));
    return id;
  }

  /** Stores bytes of object `id` (verified by the backend); skips objects already present. */
  async putRaw(id: ObjectId, bytes: Uint8Array): Promise<void> {
    await this.backend.put(metaKey(id), { bytes });
  }

  async has(id: ObjectId): Promise<boolean> {
    return (await this.backend.stat(metaKey(id))) !== undefined;
  }

  /** The object's bytes, verified against the id (a whole-object read of the backend is). */
  async getRaw(id: ObjectId): Promise<Uint8Array> {
    try {
      return await this.backend.get(metaKey(id));
    } catch (e) {
      if (e instanceof NotFoundError) throw new NotFoundError(`object ${id}`, { id });
      if (e instanceof CorruptObjectError) throw new CorruptObjectError(id, this.where(id), e.data.detail as string | undefined);
      throw e;
    }
  }

  /** The object, verified (by getRaw), and of the type asked for. */
  async get<T extends MetaObject>(id: ObjectId, type: T['type']): Promise<T> {
    return this.decode<T>(id, type, await this.getRaw(id));
  }

  /**
   * A commit for showing history (log): from the commit cache when it holds it, else as get()
   * reads it. Not for fsck, gc or anything that must see the object files themselves.
   */
  async getCommitForHistory(id: ObjectId): Promise<Commit> {
    const cached = this.commitCache?.get(id);
    return cached ? this.decode<Commit>(id, 'commit', cached) : this.get<Commit>(id, 'commit');
  }

  private decode<T extends MetaObject>(id: ObjectId, type: T['type'], bytes: Uint8Array): T {
    let obj: T | undefined;
    try {
      obj = decodeCanonical<T>(bytes);
    } catch {
      obj = undefined;
    }
    const kind = (obj as { type?: unknown } | undefined)?.type;
    if (typeof kind !== 'string' || !META_KINDS.has(kind)) throw new CorruptObjectError(id, this.where(id));
    if (kind !== type) throw new CkptError('E_NOT_FOUND', `object ${id} is a ${kind}, not a ${type}`, { id });
    return obj!;
  }

  /** Ids starting with `prefix` (at least 2 hex characters). */
  async findByPrefix(prefix: string): Promise<ObjectId[]> {
    if (!/^[0-9a-f]{2,64}$/.test(prefix)) return [];
    const fan = `${META_PREFIX}${prefix.slice(0, 2)}/`;
    return (await this.backend.list(fan)).map((k) => prefix.slice(0, 2) + k.key.slice(fan.length)).filter((id) => id.startsWith(prefix));
  }

  /** Every metadata object's id, in id order. */
  async *all(): AsyncGenerator<ObjectId> {
    for (const k of await this.backend.list(META_PREFIX)) {
      const m = /^objects\/meta\/([0-9a-f]{2})\/([0-9a-f]{62})$/.exec(k.key);
      if (m) yield m[1] + m[2];
    }
  }
}
