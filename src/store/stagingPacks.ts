/**
 * Packs written aside, in a folder of their own under the store's tmp/, before they are sent or
 * taken in: push builds the packs a remote lacks there, and a partial fetch builds the packs of
 * the chunks it fetched there, moving each pack into the store (where it stays invisible until
 * its index file follows) only once it is complete. Disposing removes the folder and whatever
 * is left in it.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import type { ObjectId } from '../core/objectId.js';
import { renameIntoPlace } from '../backend/atomicFile.js';
import type { PutBody } from '../backend/backend.js';
import { LocalBackend } from '../backend/localBackend.js';
import { PackWriter } from './packWriter.js';

export class StagingPacks {
  private readonly dir: string;

  constructor(
    private readonly tmpDir: string,
    hint: string,
    /** The store's own folders, where staged files move in. */
    private readonly packsDir: string,
    private readonly indexDir: string,
  ) {
    this.dir = path.join(tmpDir, `${hint}-${process.pid}-${randomBytes(4).toString('hex')}`);
  }

  /** A writer whose finished packs and index files land in this staging folder. */
  newWriter(): PackWriter {
    return new PackWriter(new LocalBackend(this.dir), path.join(this.dir, 'tmp'));
  }

  private packFile(id: ObjectId): string {
    return path.join(this.dir, 'objects', 'packs', `${id}.pack`);
  }

  private indexFile(id: ObjectId): string {
    return path.join(this.dir, 'objects', 'index', `${id}.idx`);
  }

  /** A staged pack, to upload. */
  packBody(id: ObjectId): PutBody {
    return { file: this.packFile(id) };
  }

  /** A staged index file, to upload. */
  indexBody(id: ObjectId): PutBody {
    return { file: this.indexFile(id) };
  }

  /** Moves a staged pack into the store; no index names it yet, so nothing reads it. */
  async movePackIn(id: ObjectId): Promise<void> {
    await renameIntoPlace(this.packFile(id), path.join(this.packsDir, `${id}.pack`));
  }

  /** Moves a staged index file into the store: its pack's chunks become visible. */
  async moveIndexIn(id: ObjectId): Promise<void> {
    await renameIntoPlace(this.indexFile(id), path.join(this.indexDir, `${id}.idx`));
  }

  async dispose(): Promise<void> {
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}
