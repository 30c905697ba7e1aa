/**
 * One look at the watched folder: every checkpoint file and checkpoint folder under it, with the
 * stat fields of every file it holds (and a fingerprint of them all), plus the inodes of the
 * temporary names seen (a file or folder renamed from one is complete the moment it has its name).
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { isStoreFolderName } from '../store/storeLocation.js';
import { folderConvention, isCheckpointFileName, isTemporaryName, type FolderConvention } from './checkpointNames.js';

export interface FileStat {
  path: string;
  size: number;
  mtimeMs: number;
}

export interface Candidate {
  /** Absolute path of the file or folder. */
  path: string;
  folder: boolean;
  /** The naming convention of a folder (dcp when it holds `.metadata`); 'file' for a file. */
  convention: FolderConvention | 'dcp' | 'folder' | 'file';
  ino: string;
  /** Every regular file (for a folder, everything below it), sorted. */
  files: FileStat[];
  /** Changes whenever any file's size, mtime or inode changes, or files come or go. */
  fingerprint: string;
  newestMtimeMs: number;
}

export interface Scan {
  candidates: Candidate[];
  /** Inodes of temporary names (files and folders) seen in this scan. */
  temporary: Set<string>;
}

/** Checkpoints are looked for this deep below the watched folder. */
const MAX_DEPTH = 4;

async function listFolder(dir: string): Promise<{ files: FileStat[]; keys: string[] } | undefined> {
  const files: FileStat[] = [];
  const keys: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of (await fs.readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await fs.stat(p, { bigint: true });
        files.push({ path: p, size: Number(st.size), mtimeMs: Number(st.mtimeMs) });
        keys.push(`${path.relative(dir, p)}\0${st.ino}\0${st.size}\0${st.mtimeNs}`);
      }
    }
  };
  try {
    await walk(dir);
  } catch (e) {
    // removed while we looked (the trainer's rotation): not a checkpoint any more
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  return { files, keys };
}

function fingerprint(keys: string[]): string {
  return createHash('sha256').update(keys.join('\n')).digest('hex').slice(0, 32);
}

/** A fresh look at one file or folder; undefined when it is gone or empty. */
export async function candidateOf(p: string, folder: boolean, convention: Candidate['convention']): Promise<Candidate | undefined> {
  let st;
  try {
    st = await fs.stat(p, { bigint: true });
  } catch {
    return undefined;
  }
  const listing = folder ? await listFolder(p) : { files: [{ path: p, size: Number(st.size), mtimeMs: Number(st.mtimeMs) }], keys: [`\0${st.ino}\0${st.size}\0${st.mtimeNs}`] };
  if (!listing || listing.files.length === 0) return undefined;
  if (folder && listing.files.some((f) => path.basename(f.path) === '.metadata')) convention = 'dcp';
  return {
    path: p,
    folder,
    convention,
    ino: String(st.ino),
    files: listing.files,
    fingerprint: fingerprint(listing.keys),
    newestMtimeMs: Math.max(...listing.files.map((f) => f.mtimeMs)),
  };
}

export async function discoverCheckpoints(root: string): Promise<Scan> {
  const candidates: Candidate[] = [];
  const temporary = new Set<string>();
  const walk = async (dir: string, depth: number): Promise<void> => {
    let ents;
    try {
      ents = await fs.readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = path.join(dir, e.name);
      if (isTemporaryName(e.name)) {
        // remembered by inode: rename keeps it
        if (!isStoreFolderName(e.name) && e.name !== '.git') {
          const st = await fs.stat(p, { bigint: true }).catch(() => undefined);
          if (st) temporary.add(String(st.ino));
        }
        continue;
      }
      if (e.isDirectory()) {
        const convention = folderConvention(e.name);
        const hasMetadata = await fs.access(path.join(p, '.metadata')).then(() => true, () => false);
        if (convention || hasMetadata) {
          const c = await candidateOf(p, true, convention ?? 'dcp');
          if (c) candidates.push(c);
        } else if (depth < MAX_DEPTH) await walk(p, depth + 1);
      } else if (e.isFile() && isCheckpointFileName(e.name)) {
        const c = await candidateOf(p, false, 'file');
        if (c) candidates.push(c);
      }
    }
  };
  await walk(path.resolve(root), 0);
  return { candidates, temporary };
}
