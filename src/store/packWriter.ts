/**
 * Writes new chunks into packs as a stream: records are appended to a temporary file while the
 * pack's id is hashed, then the trailer goes on, the file is fsynced and put into the store's
 * backend (on a local disk: renamed into `objects/packs/`), and only then is its index file
 * written (invariant 1 of docs/architecture.md).
 */
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { objectHasher, type ObjectId } from '../core/objectId.js';
import type { Hasher } from '../core/blake3.js';
import { tmpName } from '../backend/atomicFile.js';
import type { Backend } from '../backend/backend.js';
import { indexKey, packKey } from '../backend/objectKeys.js';
import { encodeIndexFile } from './chunkIndex.js';
import { packPreamble, packTrailer, type ChunkRecord } from './packFormat.js';

export interface FinishedPack {
  pack: ObjectId;
  index: ObjectId;
  size: number;
  records: ChunkRecord[];
  /** The index file's bytes (written by finish unless asked not to). */
  indexBytes: Uint8Array;
}

/** Bytes queued for writing before `add` waits: bounds memory whatever the file size. */
const MAX_QUEUED = 32 * 1024 * 1024;

export class PackWriter {
  private fh: fs.FileHandle | undefined;
  private readonly tmp: string;
  private hasher: Hasher = objectHasher('pack');
  private records: ChunkRecord[] = [];
  private offset = 0;
  private queued = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private failed: unknown;

  constructor(
    /** Where the finished pack goes: only its put is used. */
    private readonly backend: Pick<Backend, 'put'>,
    /** A local folder for the pack while it is written (on the store's disk when it is local). */
    private readonly tmpDir: string,
  ) {
    this.tmp = tmpName(tmpDir, 'pack');
  }

  get bytes(): number {
    return this.offset;
  }

  get count(): number {
    return this.records.length;
  }

  private write(data: Uint8Array): void {
    this.hasher.update(data);
    this.offset += data.length;
    this.queued += data.length;
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        if (!this.fh) {
          await fs.mkdir(this.tmpDir, { recursive: true });
          this.fh = await fs.open(this.tmp, 'w');
        }
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await this.fh.write(data, done, data.length - done);
          done += bytesWritten;
        }
      } catch (e) {
        this.failed = e;
      } finally {
        this.queued -= data.length;
      }
    });
  }

  /** Appends one stored chunk. Resolves once the write queue has room again. */
  async add(rec: Omit<ChunkRecord, 'offset' | 'stored'>, stored: Uint8Array): Promise<void> {
    if (this.offset === 0) this.write(packPreamble());
    this.records.push({ ...rec, offset: this.offset, stored: stored.length });
    this.write(stored);
    if (this.queued > MAX_QUEUED) await this.chain;
    if (this.failed) throw this.failed;
  }

  /**
   * Closes the pack and makes it durable; returns undefined when no chunk was added. With
   * `withIndex: false` the index file is left to the caller (a copy between stores verifies a
   * received pack's chunks before its index file makes them visible).
   */
  async finish(opts: { withIndex?: boolean } = {}): Promise<FinishedPack | undefined> {
    if (this.records.length === 0) return undefined;
    this.write(packTrailer(this.records));
    await this.chain;
    if (this.failed) {
      await this.abort();
      throw this.failed;
    }
    const fh = this.fh!;
    await fh.sync();
    await fh.close();
    this.fh = undefined;
    const pack = this.hasher.hex();
    try {
      await this.backend.put(packKey(pack), { file: this.tmp, writtenAs: pack });
    } finally {
      await fs.rm(this.tmp, { force: true });
    }
    const idx = encodeIndexFile(pack, this.offset, this.records);
    if (opts.withIndex !== false) await this.backend.put(indexKey(idx.id), { bytes: idx.bytes });
    return { pack, index: idx.id, size: this.offset, records: this.records, indexBytes: idx.bytes };
  }

  async abort(): Promise<void> {
    await this.chain.catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    await fs.rm(this.tmp, { force: true });
  }
}
