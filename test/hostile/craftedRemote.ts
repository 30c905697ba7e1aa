/**
 * Remotes an attacker would build: a real store (so chunks and packs are sound) whose refs,
 * trees and manifests are written by hand, bypassing every check ckpt makes on its own writes,
 * and an HTTP peer that serves such a store but answers chosen requests with endless, dripping
 * or no bodies.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { encodeCanonical } from '../../src/core/canonical.js';
import { objectId, type ObjectId } from '../../src/core/objectId.js';
import type { Commit, Manifest, Tree, TreeEntry } from '../../src/core/objects.js';
import { commitFiles } from '../../src/repo/commit.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalBackend } from '../../src/backend/localBackend.js';
import { parseKey } from '../../src/backend/objectKeys.js';

export interface Source {
  repo: Repository;
  /** The `.ckpt` folder: what a folder remote or `ckpt serve` reads. */
  storeDir: string;
  /** A real entry (manifest with chunks in packs) to reuse under crafted paths. */
  entry: TreeEntry;
  manifest: Manifest;
  bytes: Buffer;
}

/** A repository with one real 20 KB file committed. */
export async function makeSource(dir: string): Promise<Source> {
  await fs.mkdir(dir, { recursive: true });
  const repo = await Repository.init(dir);
  const bytes = randomBytes(20_000);
  await fs.writeFile(path.join(dir, 'model.bin'), bytes);
  const c = await commitFiles(repo, [path.join(dir, 'model.bin')], { message: 'real' });
  await fs.rm(path.join(dir, 'model.bin'));
  const tree = await repo.readTree(c.tree);
  const entry = tree.files['model.bin'];
  return { repo, storeDir: repo.store.dir, entry, manifest: await repo.readManifest(entry.manifest), bytes };
}

/** Writes any object as stored metadata, unchecked; returns its id. */
export async function plantMeta(storeDir: string, obj: { type: 'tree' | 'commit' | 'manifest' } & Record<string, unknown>): Promise<ObjectId> {
  const bytes = encodeCanonical(obj);
  const id = objectId(obj.type, bytes);
  const file = path.join(storeDir, 'objects', 'meta', id.slice(0, 2), id.slice(2));
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, bytes);
  return id;
}

export async function plantRef(storeDir: string, ref: string, id: ObjectId): Promise<void> {
  const file = path.join(storeDir, ...ref.split('/'));
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `${id}\n`);
}

/** A commit whose tree is `files` (path -> entry), pointed to by refs/heads/main. */
export async function plantCommit(storeDir: string, files: Record<string, TreeEntry>, ref = 'refs/heads/main'): Promise<{ commit: ObjectId; tree: ObjectId }> {
  const tree = await plantMeta(storeDir, { type: 'tree', files } satisfies Tree);
  const commit = await plantMeta(storeDir, {
    type: 'commit',
    tree,
    parents: [],
    message: 'crafted',
    author: 'attacker',
    time: 1,
    meta: {},
  } satisfies Commit);
  await plantRef(storeDir, ref, commit);
  return { commit, tree };
}

export type Sabotage = 'endless' | 'drip' | 'silent';

/**
 * An HTTP peer speaking ckpt serve's protocol over `storeDir`, except that requests for keys of
 * the sabotaged kind get an endless body, one byte every `dripMs`, or no answer at all.
 */
export async function startHostileServer(
  storeDir: string,
  sabotage: { kind: 'meta' | 'pack' | 'index' | 'ref'; how: Sabotage; dripMs?: number },
): Promise<{ url: string; close(): Promise<void> }> {
  const t = new LocalBackend(storeDir);
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer(async (req, res) => {
    try {
      const u = new URL(req.url ?? '/', 'http://x');
      const key = u.pathname.split('/').slice(2).join('/');
      if (key === '' && u.searchParams.has('list')) {
        const body = JSON.stringify(await t.list(u.searchParams.get('list') ?? ''));
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
        return;
      }
      const kind = parseKey(key)?.kind;
      if (kind === sabotage.kind && req.method === 'GET') {
        if (sabotage.how === 'silent') return; // never answers
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        if (sabotage.how === 'endless') {
          const block = randomBytes(1 << 20);
          const pump = () => {
            while (res.write(block));
            res.once('drain', pump);
          };
          res.on('close', () => res.removeAllListeners('drain'));
          pump();
          return;
        }
        const tick = setInterval(() => res.write(Buffer.from([0x42])), sabotage.dripMs ?? 200);
        timers.add(tick);
        res.on('close', () => {
          clearInterval(tick);
          timers.delete(tick);
        });
        return;
      }
      if (kind === 'ref') {
        const id = await t.readRef(key);
        if (!id) return void res.writeHead(404).end('{}');
        return void res.writeHead(200).end(`${id}\n`);
      }
      const info = await t.stat(key);
      if (!info) return void res.writeHead(404).end('{}');
      if (req.method === 'HEAD') return void res.writeHead(200, { 'Content-Length': info.size }).end();
      res.writeHead(200, { 'Content-Length': info.size }).end(await fs.readFile(path.join(storeDir, ...key.split('/'))));
    } catch (e) {
      res.writeHead(500).end(JSON.stringify({ error: String(e) }));
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/r`,
    close: () =>
      new Promise<void>((r) => {
        for (const t of timers) clearInterval(t);
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Every file below `dir` (relative paths), symlinks included as entries. */
export async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await fs.readdir(d, { withFileTypes: true }).catch(() => [])) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(d, e.name), r);
      else out.push(r);
    }
  };
  await walk(dir, '');
  return out.sort();
}

/** Peak RSS (VmHWM) of a running process, polled until it exits; bytes. */
export function watchPeakRss(pid: number): { stop(): number } {
  let peak = 0;
  const read = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      /* exited */
    }
  };
  const timer = setInterval(read, 25);
  read();
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
  };
}
