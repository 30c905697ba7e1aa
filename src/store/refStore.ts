/**
 * Refs (branches, tags, remote-tracking refs) and HEAD. A ref changes only under its lock, by
 * compare-and-swap against the value the writer read (invariant 3 of docs/architecture.md); every change is
 * appended to the reflog.
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { CkptError, NotFoundError, RefConflictError, UsageError } from '../core/errors.js';
import { isObjectId, type ObjectId } from '../core/objectId.js';
import { readFileOrUndefined, writeFileAtomic } from '../backend/atomicFile.js';
import { withLock } from '../backend/lockFile.js';
import { isSafeRefName } from '../backend/objectKeys.js';

/**
 * Longest ref name, prefix included: its lock file (the name with '/' as '%', plus '.lock') must
 * fit the 255-byte limit of a file name.
 */
export const MAX_REF_BYTES = 240;

export type Head = { kind: 'branch'; ref: string } | { kind: 'detached'; id: ObjectId };

export class RefStore {
  constructor(
    private readonly root: string,
    private readonly clock: () => number = Date.now,
  ) {}

  private file(ref: string): string {
    if (Buffer.byteLength(ref) > MAX_REF_BYTES) {
      throw new UsageError(`ref name too long: ${Buffer.byteLength(ref)} bytes (${ref.slice(0, 40)}...); at most ${MAX_REF_BYTES} bytes with its refs/... prefix`);
    }
    if (!isSafeRefName(ref) || !/^refs\/(heads|tags|remotes|parts)\//.test(ref)) throw new UsageError(`invalid ref name ${ref}`);
    return path.join(this.root, ...ref.split('/'));
  }

  private lockFile(ref: string): string {
    return path.join(this.root, 'locks', `${ref.replaceAll('/', '%')}.lock`);
  }

  async read(ref: string): Promise<ObjectId | null> {
    const b = await readFileOrUndefined(this.file(ref));
    if (!b) return null;
    const id = b.toString('utf8').trim();
    if (!isObjectId(id)) {
      throw new CkptError('E_CORRUPT', `ref ${ref} is corrupt (${this.file(ref)}): ${JSON.stringify(id.slice(0, 80))}`, { ref, file: this.file(ref) });
    }
    return id;
  }

  /**
   * Sets `ref` to `next` (null deletes) if it still holds `expected`; otherwise throws
   * RefConflictError naming the value found.
   */
  async cas(ref: string, expected: ObjectId | null, next: ObjectId | null, reason: string): Promise<void> {
    const file = this.file(ref);
    await withLock(this.lockFile(ref), async () => {
      const actual = await this.read(ref);
      if (actual !== expected) throw new RefConflictError(ref, expected, actual);
      if (next === null) await fs.rm(file, { force: true });
      else await writeFileAtomic(file, `${next}\n`, path.join(this.root, 'tmp'));
      await this.appendLog(ref, actual, next, reason);
    });
  }

  private async appendLog(ref: string, old: ObjectId | null, next: ObjectId | null, reason: string): Promise<void> {
    const file = path.join(this.root, 'logs', ...ref.split('/'));
    await fs.mkdir(path.dirname(file), { recursive: true });
    const line = `${old ?? '0'.repeat(64)} ${next ?? '0'.repeat(64)} ${this.clock()} ${reason.replace(/\s+/g, ' ')}\n`;
    await fs.appendFile(file, line);
  }

  /** Reflog entries of a ref, oldest first. */
  async log(ref: string): Promise<{ old: ObjectId | null; next: ObjectId | null; time: number; reason: string }[]> {
    const b = await readFileOrUndefined(path.join(this.root, 'logs', ...ref.split('/')));
    if (!b) return [];
    const zero = '0'.repeat(64);
    return b
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => {
        const [old, next, time, ...rest] = l.split(' ');
        return { old: old === zero ? null : old, next: next === zero ? null : next, time: Number(time), reason: rest.join(' ') };
      });
  }

  /** All refs under a prefix such as 'refs/heads/', as name -> id. */
  async list(prefix: string): Promise<Map<string, ObjectId>> {
    const out = new Map<string, ObjectId>();
    const walk = async (rel: string): Promise<void> => {
      let ents;
      try {
        ents = await fs.readdir(path.join(this.root, ...rel.split('/')), { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of ents) {
        const r = `${rel}${e.name}`;
        if (e.isDirectory()) await walk(`${r}/`);
        else if (isSafeRefName(r)) {
          const id = await this.read(r);
          if (id) out.set(r, id);
        }
      }
    };
    await walk(prefix.endsWith('/') ? prefix : `${prefix}/`);
    return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  async readHead(): Promise<Head> {
    const file = path.join(this.root, 'HEAD');
    const b = await readFileOrUndefined(file);
    if (!b) throw new NotFoundError('HEAD');
    const t = b.toString('utf8').trim();
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
    await writeFileAtomic(path.join(this.root, 'HEAD'), text, path.join(this.root, 'tmp'));
  }
}
