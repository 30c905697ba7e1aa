/**
 * `ckpt restore-code REV [DIR]`: writes back the uncommitted code files stored with a checkpoint
 * (`--with-code`), each verified against its hash, into DIR (default: the top of the Git work
 * tree). Checking out the recorded Git commit first is the user's step; ckpt says which one and
 * warns when DIR's HEAD is elsewhere, but never moves the user's Git state itself.
 */
import * as path from 'node:path';
import { CkptError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import type { CodeProvenance } from '../core/objects.js';
import { writeManifestFile } from './checkout.js';
import { findGitRoot } from './provenance.js';
import type { Repository } from './repository.js';
import { resolveRevision } from './resolveRevision.js';
import git from 'isomorphic-git';
import nodeFs from 'node:fs';

export interface RestoreCodeResult {
  commit: ObjectId;
  code: CodeProvenance;
  dir: string;
  written: { path: string; size: number; hash: string }[];
  /** Changed files with no stored contents: deleted in the recorded state, or too big to store. */
  notRestored: string[];
  /** DIR's Git HEAD, when DIR is in a Git work tree. */
  gitHead?: string;
  warnings: string[];
}

export async function restoreCode(repo: Repository, rev: string, dir?: string): Promise<RestoreCodeResult> {
  const id = await resolveRevision(repo, rev);
  const commit = await repo.readCommit(id);
  const code = commit.code;
  if (!code) throw new CkptError('E_NOT_FOUND', `commit ${id.slice(0, 12)} recorded no code provenance (it was not made in a Git work tree)`, { id });
  const target = path.resolve(dir ?? (await findGitRoot(repo.root)) ?? repo.root);
  const warnings: string[] = [];
  let gitHead: string | undefined;
  const gitRoot = await findGitRoot(target);
  if (gitRoot) {
    gitHead = await git.resolveRef({ fs: nodeFs, dir: gitRoot, ref: 'HEAD' }).catch(() => undefined);
    if (code.commit && gitHead !== code.commit) {
      warnings.push(`${gitRoot} is at ${gitHead?.slice(0, 12) ?? 'no commit'}, the checkpoint was made at ${code.commit.slice(0, 12)}: run \`git checkout ${code.commit}\` there for an exact reproduction`);
    }
  }
  const listed = [...(code.changed ?? []), ...(code.untracked ?? [])];
  if (!code.files) {
    if (listed.length > 0) {
      throw new CkptError('E_NOT_FOUND', `commit ${id.slice(0, 12)} lists ${listed.length} uncommitted file(s) but did not store them (commit with --with-code to keep them)`, {
        id,
        files: listed,
      });
    }
    return { commit: id, code, dir: target, written: [], notRestored: [], ...(gitHead ? { gitHead } : {}), warnings };
  }
  const tree = await repo.readTree(code.files);
  const lock = await repo.store.lockShared('restore-code');
  const reader = await repo.store.reader(await repo.store.reloadIndex());
  const written: RestoreCodeResult['written'] = [];
  try {
    for (const p of Object.keys(tree.files).sort()) {
      // paths come from the store: refuse any that would leave DIR
      const dest = path.resolve(target, ...p.split('/'));
      if (!dest.startsWith(target + path.sep)) throw new UsageError(`refusing to write ${p}: outside ${target}`);
      const e = tree.files[p];
      await writeManifestFile(reader, await repo.readManifest(e.manifest), e.manifest, dest, await repo.store.scratchFile('checkout'));
      written.push({ path: p, size: e.size, hash: e.hash });
    }
  } finally {
    await reader.close();
    await lock.release();
  }
  const notRestored = listed.filter((p) => !tree.files[p]);
  return { commit: id, code, dir: target, written, notRestored, ...(gitHead ? { gitHead } : {}), warnings };
}
