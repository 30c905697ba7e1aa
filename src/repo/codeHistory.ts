/**
 * `ckpt log --code GIT_REV`: the checkpoint commits made from one commit of the training code.
 * Two sources, merged: the Git note on that commit (what `git log --notes=ckpt` shows) and the
 * provenance recorded in ckpt's own commits, so a lost or unpushed note hides nothing.
 */
import { CkptError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { checkpointsNoted, resolveGitRevision } from './gitNotes.js';
import type { LogEntry } from './history.js';
import { refsByCommit } from './history.js';
import { findGitRoot } from './provenance.js';
import { findRoots, markReachable } from './reachability.js';
import type { Repository } from './repository.js';

export async function logForCode(repo: Repository, gitRev: string): Promise<{ gitCommit: string; entries: LogEntry[] }> {
  const gitRoot = await findGitRoot(repo.root);
  if (!gitRoot) throw new CkptError('E_NOT_FOUND', `--code needs a Git work tree; ${repo.root} is not in one`);
  const gitCommit = await resolveGitRevision(gitRoot, gitRev);
  const reach = await markReachable(repo, await findRoots(repo), await repo.store.index());
  const ids = new Set<ObjectId>();
  for (const [id, c] of reach.commits) if (c.code?.commit === gitCommit) ids.add(id);
  for (const id of await checkpointsNoted(gitRoot, gitCommit)) if (await repo.store.meta.has(id)) ids.add(id);
  const names = await refsByCommit(repo);
  const entries: LogEntry[] = [];
  for (const id of ids) entries.push({ id, commit: reach.commits.get(id) ?? (await repo.readCommit(id)), refs: names.get(id) ?? [] });
  entries.sort((a, b) => b.commit.time - a.commit.time);
  return { gitCommit, entries };
}
