/**
 * `ckpt watch`: looks at a folder every interval and commits each checkpoint that has become
 * complete (completeness.ts), once (watchRecord.ts), oldest step first. A checkpoint is
 * hard-linked into the store's tmp/ (linkSnapshot.ts) the first time it is seen, so the trainer's
 * rotation cannot delete it before it is judged complete or from under its commit: one deleted
 * before it was judged is judged on its link (the same inode, so a writer still writing shows
 * there too, and /proc shows a writer holding the deleted original). It is read once, by the
 * commit itself; its files are looked at again (stat only) before the branch moves, and a
 * checkpoint that changed while it was read is not committed but looked at again later.
 * With a retention policy, prune and gc run after each commit.
 */
import * as path from 'node:path';
import { CkptError } from '../core/errors.js';
import type { CommitMeta } from '../core/objects.js';
import { appendCommit } from '../repo/appendCommit.js';
import { commitFiles } from '../repo/commit.js';
import { prune, type RetentionPolicy } from '../repo/prune.js';
import type { Repository } from '../repo/repository.js';
import { readCheckpointMeta } from './checkpointMeta.js';
import { conventionVerdict, settled } from './completeness.js';
import { candidateOf, discoverCheckpoints, type Candidate } from './discoverCheckpoints.js';
import { linkSnapshot, removeStaleSnapshots, type Snapshot } from './linkSnapshot.js';
import { filesOpenForWriting } from './openWriters.js';
import { WatchRecord, type WatchMark } from './watchRecord.js';

export interface WatchOptions {
  dir: string;
  branch?: string;
  intervalMs: number;
  settleMs: number;
  retention?: RetentionPolicy;
  /** One look: commit what is complete now (by mtime age for the timing rule) and stop. */
  once?: boolean;
  allowUnsafePickle?: boolean;
  /** One line per commit (and per checkpoint that could not be committed). */
  log: (line: string) => void;
}

export interface WatchCommit {
  source: string;
  id: string;
  meta: CommitMeta;
  files: number;
  bytes: number;
  /** When the checkpoint's newest file was last written, and when its commit landed (ms). */
  writtenAt: number;
  committedAt: number;
  pruned?: number;
}

class ChangedWhileReading extends Error {}

interface Prepared {
  c: Candidate;
  meta: CommitMeta;
  snap: Snapshot | undefined;
}

function describeMeta(m: CommitMeta): string {
  const parts: string[] = [];
  if (m.step !== undefined) parts.push(`step ${m.step}`);
  for (const [k, v] of Object.entries(m.metrics ?? {}).slice(0, 4)) parts.push(`${k}=${Number(v.toPrecision(6))}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

export class Watcher {
  /** Fingerprint of each checkpoint at the previous look. */
  private previous = new Map<string, string>();
  /** Inodes seen under temporary names at recent looks, with the look they were last seen at. */
  private temporary = new Map<string, number>();
  /** Checkpoints that became their name by a rename from a temporary name (path -> inode). */
  private renamed = new Map<string, string>();
  /** Checkpoints that failed to commit, by fingerprint: not tried again until they change. */
  private failed = new Map<string, string>();
  private looks = 0;
  /** Prepared and waiting for their commit. */
  private readonly queued = new Set<string>();
  /**
   * Hard links made the moment a checkpoint is first seen (path -> link and the original as last
   * seen): if the trainer deletes it before it is judged complete, it is judged, and committed,
   * from the link, which shares the inode and so sees every later write.
   */
  private readonly early = new Map<string, { snap: Snapshot; last: Candidate; seen?: string }>();
  private stopping = false;

  private constructor(
    private readonly repo: Repository,
    private readonly opts: WatchOptions,
    private readonly record: WatchRecord,
  ) {}

  static async open(repo: Repository, opts: WatchOptions): Promise<Watcher> {
    await removeStaleSnapshots(await repo.store.scratchFolder());
    return new Watcher(repo, opts, await WatchRecord.load(repo, opts.branch));
  }

  get committedBefore(): number {
    return this.record.size;
  }

  private source(c: Candidate): string {
    const rel = path.relative(this.repo.root, c.path);
    return rel.startsWith('..') || path.isAbsolute(rel) ? c.path : rel.split(path.sep).join('/');
  }

  /** One look at the folder; commits what is complete. */
  async look(): Promise<WatchCommit[]> {
    return this.commitAll(await this.prepare());
  }

  /**
   * Finds what became complete, reads its step and metrics and links it into the store; the
   * commits are made by commitAll, which `run` lets proceed while the next looks happen.
   */
  private async prepare(): Promise<Prepared[]> {
    const now = Date.now();
    this.looks++;
    const scan = await discoverCheckpoints(this.opts.dir);
    const ready: Candidate[] = [];
    const fromSnapshot = new Map<string, Snapshot>();
    for (const c of scan.candidates) {
      if (this.temporary.has(c.ino)) this.renamed.set(c.path, c.ino);
      const mark: WatchMark = { source: this.source(c), fingerprint: c.fingerprint };
      if (this.record.has(mark) || this.queued.has(WatchRecord.key(mark)) || this.failed.get(c.path) === c.fingerprint) {
        await this.dropEarly(c.path);
        continue;
      }
      await this.linkEarly(c);
      const verdict = await conventionVerdict(c, this.renamed.get(c.path) === c.ino);
      const stable = this.opts.once || this.previous.get(c.path) === c.fingerprint;
      if (verdict === 'complete' ? stable : verdict === 'unknown' && stable && settled(c, now, this.opts.settleMs)) ready.push(c);
    }
    // originals gone before they were judged complete: judged on their early links instead
    const present = new Set(scan.candidates.map((c) => c.path));
    for (const [p, e] of this.early) {
      if (present.has(p)) continue;
      const c = await candidateOf(e.snap.path, e.last.folder, e.last.convention);
      const mark = c && { source: this.source(e.last), fingerprint: c.fingerprint };
      if (!c || !mark || this.record.has(mark) || this.queued.has(WatchRecord.key(mark))) {
        await this.dropEarly(p);
        continue;
      }
      const stable = this.opts.once || e.seen === c.fingerprint;
      e.seen = c.fingerprint;
      // the convention still decides first: DeepSpeed's and Megatron's markers sit beside the
      // original's name, the others' inside the linked folder
      const beside = c.convention === 'deepspeed' || c.convention === 'megatron';
      const verdict = await conventionVerdict(beside ? { ...c, path: p } : c, false);
      if (stable && (verdict === 'complete' || (verdict === 'unknown' && settled(c, now, this.opts.settleMs)))) {
        // the original's paths, so a writer still holding a deleted original is seen
        const files = c.files.map((f) => ({ ...f, path: c.folder ? path.join(p, path.relative(c.path, f.path)) : p }));
        const orig = { ...c, path: p, files };
        fromSnapshot.set(p, e.snap);
        ready.push(orig);
      }
    }
    this.previous = new Map(scan.candidates.map((c) => [c.path, c.fingerprint]));
    for (const ino of scan.temporary) this.temporary.set(ino, this.looks);
    for (const [ino, at] of this.temporary) if (at < this.looks - 20) this.temporary.delete(ino);
    for (const p of this.renamed.keys()) if (!present.has(p)) this.renamed.delete(p);

    // a writer holding a deleted original open shows it as `<path> (deleted)`
    const open = await filesOpenForWriting(new Set(ready.flatMap((c) => c.files.map((f) => f.path))));
    const todo: { c: Candidate; meta: CommitMeta }[] = [];
    for (const c of ready) {
      if (c.files.some((f) => open.has(f.path))) continue;
      const early = fromSnapshot.get(c.path);
      todo.push({ c, meta: await readCheckpointMeta(early?.path ?? c.path, c.folder) });
    }
    todo.sort((a, b) => (a.meta.step ?? Infinity) - (b.meta.step ?? Infinity) || a.c.newestMtimeMs - b.c.newestMtimeMs);
    // linked before any is committed: rotation can no longer take one away
    const out: Prepared[] = [];
    for (const { c, meta } of todo) {
      this.queued.add(WatchRecord.key({ source: this.source(c), fingerprint: c.fingerprint }));
      out.push({ c, meta, snap: await this.takeSnapshot(c) });
    }
    return out;
  }

  /** Links a checkpoint the first time it is seen, and again when its files are no longer the link's. */
  private async linkEarly(c: Candidate): Promise<void> {
    const e = this.early.get(c.path);
    if (e) {
      e.last = c;
      const linked = await candidateOf(e.snap.path, c.folder, c.convention);
      if (linked?.fingerprint === c.fingerprint) return;
    }
    const snap = await linkSnapshot(c, await this.repo.store.scratchFolder());
    if (!snap) return;
    this.early.delete(c.path);
    await e?.snap.dispose();
    this.early.set(c.path, { snap, last: c });
  }

  /** The snapshot a commit reads: the early link when it still holds exactly `c`, else a new link. */
  private async takeSnapshot(c: Candidate): Promise<Snapshot | undefined> {
    const e = this.early.get(c.path);
    if (e) {
      this.early.delete(c.path);
      const linked = await candidateOf(e.snap.path, c.folder, c.convention);
      if (linked?.fingerprint === c.fingerprint) return e.snap;
      await e.snap.dispose();
    }
    return linkSnapshot(c, await this.repo.store.scratchFolder());
  }

  private async dropEarly(p: string): Promise<void> {
    const e = this.early.get(p);
    this.early.delete(p);
    await e?.snap.dispose();
  }

  /** Lets every early link go (the watcher stops). */
  async close(): Promise<void> {
    for (const e of this.early.values()) await e.snap.dispose();
    this.early.clear();
  }

  /** Commits prepared checkpoints in order, then lets their links go. */
  private async commitAll(todo: Prepared[]): Promise<WatchCommit[]> {
    const done: WatchCommit[] = [];
    try {
      for (const { c, meta, snap } of todo) {
        if (this.stopping) break;
        const r = await this.commitOne(c, meta, snap);
        if (r) done.push(r);
      }
    } finally {
      for (const { c, snap } of todo) {
        this.queued.delete(WatchRecord.key({ source: this.source(c), fingerprint: c.fingerprint }));
        await snap?.dispose();
      }
    }
    return done;
  }

  private async commitOne(c: Candidate, meta: CommitMeta, snap: Snapshot | undefined): Promise<WatchCommit | undefined> {
    const at = snap?.path ?? c.path;
    const source = this.source(c);
    const mark: WatchMark = { source, fingerprint: c.fingerprint };
    const message = `watch: ${source}`;
    const fullMeta: CommitMeta = { ...meta, extra: { watch: { ...mark } } };
    let id: string | undefined;
    try {
      await commitFiles(
        this.repo,
        snap?.files ?? c.files.map((f) => f.path),
        {
          message,
          meta: fullMeta,
          detached: true,
          treeRoot: c.folder ? at : path.dirname(at),
          allowUnsafePickle: this.opts.allowUnsafePickle,
          // the branch moves only if nothing changed while the files were read, and before the
          // store lock is released, so no gc can sweep the new chunks in between
          whileLocked: async (r) => {
            const again = await candidateOf(at, c.folder, c.convention);
            if (!again || again.fingerprint !== c.fingerprint) throw new ChangedWhileReading();
            id = (await appendCommit(this.repo, { tree: r.tree, message, meta: fullMeta, branch: this.opts.branch })).id;
          },
        },
      );
    } catch (e) {
      if (e instanceof ChangedWhileReading || (e as NodeJS.ErrnoException).code === 'ENOENT' || (e as CkptError).code === 'E_NOT_FOUND') {
        // rewritten or rotated away while we read it: look again next time
        this.previous.delete(c.path);
        return undefined;
      }
      if (!(e instanceof CkptError) || e.code === 'E_LOCKED') throw e;
      this.failed.set(c.path, c.fingerprint);
      this.opts.log(`ckpt watch: cannot commit ${source}: ${e.message}`);
      return undefined;
    }
    this.record.add(mark);
    const committedAt = Date.now();
    let pruned: number | undefined;
    let retentionNote = '';
    if (this.opts.retention) {
      try {
        pruned = (await prune(this.repo, this.opts.retention)).pruned.length;
      } catch (e) {
        // the commit stands; retention runs again after the next one
        if (!(e instanceof CkptError)) throw e;
        retentionNote = `; retention not applied this time: ${e.message}`;
      }
    }
    const bytes = c.files.reduce((n, f) => n + f.size, 0);
    const secs = ((committedAt - Math.max(c.newestMtimeMs, 0)) / 1000).toFixed(1);
    this.opts.log(
      `ckpt watch: committed ${source} as ${id!.slice(0, 12)}${describeMeta(meta)}, ${c.files.length} file(s), ${bytes} bytes, ` +
        `${secs}s after it was written${pruned ? `; retention dropped the data of ${pruned} older commit(s)` : ''}${retentionNote}`,
    );
    return { source, id: id!, meta, files: c.files.length, bytes, writtenAt: c.newestMtimeMs, committedAt, ...(pruned !== undefined ? { pruned } : {}) };
  }

  /**
   * Looks until stopped (or once); returns every commit made. Commits run one at a time behind
   * the looks, so a long commit does not stop the watcher from finding (and linking) the next
   * checkpoints before the trainer's rotation deletes them.
   */
  async run(): Promise<WatchCommit[]> {
    try {
      return await this.loop();
    } finally {
      await this.close();
    }
  }

  private async loop(): Promise<WatchCommit[]> {
    const all: WatchCommit[] = [];
    let committing: Promise<void> = Promise.resolve();
    let failure: unknown;
    for (;;) {
      if (failure) throw failure;
      const batch = await this.prepare();
      committing = committing.then(async () => {
        if (failure) return;
        try {
          all.push(...(await this.commitAll(batch)));
        } catch (e) {
          failure = e;
        }
      });
      if (this.opts.once || this.stopping) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.opts.intervalMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      if (this.stopping) break;
    }
    await committing;
    if (failure) throw failure;
    return all;
  }

  private wake: () => void = () => undefined;

  /** Stops after the commit in progress, and ends the wait between looks at once. */
  shutdown(): void {
    this.stopping = true;
    this.wake();
  }
}
