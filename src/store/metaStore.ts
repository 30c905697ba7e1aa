/**
 * Loose metadata objects (manifests, trees, commits) under `objects/meta/<2>/<62>`, canonical
 * msgpack named by objectId(type, bytes). Written once, never overwritten, verified on read.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { decodeCanonical, encodeCanonical } from '../core/canonical.js';
import { CkptError, CorruptObjectError, NotFoundError } from '../core/errors.js';
import { objectId, type ObjectId, type ObjectKind } from '../core/objectId.js';
import type { MetaObject } from '../core/objects.js';
import { readFileOrUndefined, writeFileAtomic } from '../backend/atomicFile.js';
import { contentIdForKey, META_KINDS } from '../backend/objectKeys.js';

export class MetaStore {
  constructor(
    private readonly dir: string,
    private readonly tmpDir: string,
  ) {}

  pathOf(id: ObjectId): string {
    return path.join(this.dir, id.slice(0, 2), id.slice(2));
  }

  static encode(obj: MetaObject): { id: ObjectId; bytes: Uint8Array } {
    const bytes = encodeCanonical(obj);
    return { id: objectId(obj.type, bytes), bytes };
  }

  async put(obj: MetaObject): Promise<ObjectId> {
    const { id, bytes } = MetaStore.encode(obj);
    await this.putRaw(id, bytes);
    return id;
  }

  /** Stores bytes already known to hash to `id` (fetch, tests); skips objects already present. */
  async putRaw(id: ObjectId, bytes: Uint8Array): Promise<void> {
    const p = this.pathOf(id);
    if (await this.has(id)) return;
    await writeFileAtomic(p, bytes, this.tmpDir);
  }

  async has(id: ObjectId): Promise<boolean> {
    try {
      await fs.access(this.pathOf(id));
      return true;
    } catch {
      return false;
    }
  }

  /** The object's bytes; a folder, pipe or device where the file should be is refused (readFileOrUndefined). */
  private async readBytes(id: ObjectId): Promise<Uint8Array> {
    const bytes = await readFileOrUndefined(this.pathOf(id));
    if (!bytes) throw new NotFoundError(`object ${id}`, { id });
    return bytes;
  }

  async getRaw(id: ObjectId): Promise<Uint8Array> {
    const bytes = await this.readBytes(id);
    if (contentIdForKey('meta', bytes) !== id) throw new CorruptObjectError(id, this.pathOf(id));
    return bytes;
  }

  /** Verified as getRaw does, decoding the bytes once (getRaw's check decodes them to learn the type). */
  async get<T extends MetaObject>(id: ObjectId, type: T['type']): Promise<T> {
    const bytes = await this.readBytes(id);
    let obj: T | undefined;
    try {
      obj = decodeCanonical<T>(bytes);
    } catch {
      obj = undefined;
    }
    const kind = (obj as { type?: unknown } | undefined)?.type;
    if (typeof kind !== 'string' || !META_KINDS.has(kind) || objectId(kind as ObjectKind, bytes) !== id) throw new CorruptObjectError(id, this.pathOf(id));
    if (kind !== type) throw new CkptError('E_NOT_FOUND', `object ${id} is a ${kind}, not a ${type}`, { id });
    return obj!;
  }

  /** Ids starting with `prefix` (at least 2 hex characters). */
  async findByPrefix(prefix: string): Promise<ObjectId[]> {
    const dir = path.join(this.dir, prefix.slice(0, 2));
    let names: string[];
    try {
      names = await fs.readdir(dir);
    } catch {
      return [];
    }
    const rest = prefix.slice(2);
    return names.filter((n) => n.startsWith(rest) && n.length === 62).map((n) => prefix.slice(0, 2) + n);
  }

  async *all(): AsyncGenerator<ObjectId> {
    let fans: string[];
    try {
      fans = await fs.readdir(this.dir);
    } catch {
      return;
    }
    for (const f of fans.sort()) {
      if (!/^[0-9a-f]{2}$/.test(f)) continue;
      for (const n of (await fs.readdir(path.join(this.dir, f))).sort()) if (/^[0-9a-f]{62}$/.test(n)) yield f + n;
    }
  }
}
