/**
 * Hard links of a complete checkpoint's files under the store's tmp/, made the moment the watcher
 * decides to commit it: the trainer's own rotation (save_total_limit, save_top_k) may then delete
 * the checkpoint while its commit still waits its turn or is being read, and the bytes stay. Where
 * links cannot be made (another filesystem), the commit reads the checkpoint where it is.
 * A snapshot is named `watch-<host>-<pid>-<hex>`: a store shared between hosts holds other hosts'
 * snapshots, whose pids mean nothing here, so only this host's are ever reaped.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Candidate } from './discoverCheckpoints.js';

export interface Snapshot {
  /** The linked checkpoint: same base name, same layout below it. */
  path: string;
  files: string[];
  dispose(): Promise<void>;
}

const PREFIX = 'watch-';
/** This host's name as it appears in a snapshot's directory name. */
const HOST = os.hostname().replace(/[^A-Za-z0-9._-]/g, '_') || 'localhost';

/** Links `c` into a snapshot folder of its own under `scratch` (the store's scratch folder). */
export async function linkSnapshot(c: Candidate, scratch: string): Promise<Snapshot | undefined> {
  const base = path.join(scratch, `${PREFIX}${HOST}-${process.pid}-${randomBytes(4).toString('hex')}`);
  const dest = path.join(base, path.basename(c.path));
  const files = c.files.map((f) => (c.folder ? path.join(dest, path.relative(c.path, f.path)) : dest));
  const dispose = () => fs.rm(base, { recursive: true, force: true });
  try {
    for (const [i, f] of c.files.entries()) {
      await fs.mkdir(path.dirname(files[i]), { recursive: true });
      await fs.link(f.path, files[i]);
    }
  } catch {
    await dispose();
    return undefined;
  }
  return { path: dest, files, dispose };
}

/** Snapshots left by this host's watchers that died (their pid is gone); other hosts' stay. */
export async function removeStaleSnapshots(scratch: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(scratch);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^watch-(.+)-(\d+)-[0-9a-f]+$/.exec(n);
    if (!m || m[1] !== HOST) continue;
    let alive = true;
    try {
      process.kill(Number(m[2]), 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await fs.rm(path.join(scratch, n), { recursive: true, force: true });
  }
}
