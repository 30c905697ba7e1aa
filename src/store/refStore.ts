/**
 * Refs (branches, tags, remote-tracking refs) and HEAD, over the store's backend. A ref changes
 * only by compare-and-swap against the value the writer read, under the ref's lock (invariant 3
 * of docs/architecture.md); every change is appended to the ref's reflog under that same lock by
 * the backend, so a ref's lock and reflog are the same whoever moves it.
 */
import { CkptError, NotFoundError, UsageError } from '../core/errors.js';
import { isObjectId, type ObjectId } from '../core/objectId.js';
import { whereIs, type Backend } from '../backend/backend.js';
import { isSafeRefName, logKey, parseKey } from '../backend/objectKeys.js';
import { parseReflog } from '../backend/reflogLine.js';

/**
 * Longest ref name, prefix included: its lock file (the name with '/' as '%', plus '.lock') must
 * fit the 255-byte limit of a file name.
 */
export const MAX_REF_BYTES = 240;

export type Head = { kind: 'branch'; ref: string } | { kind: 'detached'; id: ObjectId };

export class RefStore {
  constructor(
    private readonly backend: Backend,
    private readonly clock: () => number = Date.now,
  ) {}

  private check(ref: string): string {
    if (Buffer.byteLength(ref) > MAX_REF_BYTES) {
      throw new UsageError(`ref name too long: ${Buffer.byteLength(ref)} bytes (${ref.slice(0, 40)}...); at most ${MAX_REF_BYTES} bytes with its refs/... prefix`);
    }
    if (!isSafeRefName(ref) || parseKey(ref)?.kind !== 'ref') throw new UsageError(`invalid ref name ${ref}`);
    return ref;
  }

  async read(ref: string): Promise<ObjectId | null> {
    this.check(ref);
    try {
      return await this.backend.readRef(ref);
    } catch (e) {
      if ((e as CkptError).code === 'E_CORRUPT') {
        const file = whereIs(this.backend, ref);
        throw new CkptError('E_CORRUPT', `ref ${ref} is corrupt (${file}): it must hold one commit id`, { ref, file });
      }
      throw e;
    }
  }

  /**
   * Sets `ref` to `next` (null deletes) if it still holds `expected`; otherwise throws
   * RefConflictError naming the value found.
   */
  async cas(ref: string, expected: ObjectId | null, next: ObjectId | null, reason: string): Promise<void> {
    this.check(ref);
    await this.backend.casRef(ref, expected, next, { time: this.clock(), reason });
  }

  /** Reflog entries of a ref, oldest first. */
  async log(ref: string): Promise<{ old: ObjectId | null; next: ObjectId | null; time: number; reason: string }[]> {
    const b = await this.backend.readFile!(logKey(this.check(ref)));
    return b ? parseReflog(Buffer.from(b).toString('utf8')) : [];
  }

  /** All refs under a prefix such as 'refs/heads/', as name -> id. */
  async list(prefix: string): Promise<Map<string, ObjectId>> {
    const out = new Map<string, ObjectId>();
    for (const { key } of await this.backend.list(prefix.endsWith('/') ? prefix : `${prefix}/`)) {
      if (parseKey(key)?.kind !== 'ref') continue;
      const id = await this.read(key);
      if (id) out.set(key, id);
    }
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  async readHead(): Promise<Head> {
    const file = whereIs(this.backend, 'HEAD');
    const b = await this.backend.readFile!('HEAD');
    if (!b) throw new NotFoundError('HEAD');
    const t = Buffer.from(b).toString('utf8').trim();
    if (t.startsWith('ref: ')) {
      const ref = t.slice(5);
      // HEAD names a branch of this store, never a path out of it (`ref: ../../../etc/passwd`)
      if (isSafeRefName(ref) && ref.startsWith('refs/heads/')) return { kind: 'branch', ref };
      throw new CkptError('E_CORRUPT', `${file} is corrupt: it names ${JSON.stringify(ref.slice(0, 80))}, not a branch under refs/heads/`, { file });
    }
    if (isObjectId(t)) return { kind: 'detached', id: t };
    throw new CkptError('E_CORRUPT', `${file} is corrupt: ${JSON.stringify(t.slice(0, 80))}`, { file });
  }

  async writeHead(head: Head): Promise<void> {
    const text = head.kind === 'branch' ? `ref: ${head.ref}\n` : `${head.id}\n`;
    await this.backend.writeFile!('HEAD', Buffer.from(text, 'utf8'));
  }
}
