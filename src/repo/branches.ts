/** Branches and tags: create, list, delete. */
import { CkptError, NotFoundError, UsageError } from '../core/errors.js';
import type { ObjectId } from '../core/objectId.js';
import { isSafeRefName } from '../backend/objectKeys.js';
import type { Repository } from './repository.js';
import { resolveRevision } from './resolveRevision.js';

export type RefKind = 'heads' | 'tags';

function refName(kind: RefKind, name: string): string {
  const ref = `refs/${kind}/${name}`;
  if (!isSafeRefName(ref) || /[\s~^:?*[\\]/.test(name)) throw new UsageError(`invalid ${kind === 'heads' ? 'branch' : 'tag'} name ${JSON.stringify(name)}`);
  return ref;
}

export async function listRefs(repo: Repository, kind: RefKind): Promise<{ name: string; id: ObjectId; current: boolean }[]> {
  const current = await repo.currentBranch();
  return [...(await repo.store.refs.list(`refs/${kind}/`))].map(([ref, id]) => ({
    name: ref.slice(`refs/${kind}/`.length),
    id,
    current: ref === current,
  }));
}

export async function createRef(repo: Repository, kind: RefKind, name: string, rev = 'HEAD'): Promise<ObjectId> {
  const ref = refName(kind, name);
  const id = await resolveRevision(repo, rev);
  if (await repo.store.refs.read(ref)) throw new CkptError('E_EXISTS', `${kind === 'heads' ? 'branch' : 'tag'} ${name} already exists`, { ref });
  await repo.store.refs.cas(ref, null, id, `${kind === 'heads' ? 'branch' : 'tag'}: created from ${rev}`);
  return id;
}

export async function deleteRef(repo: Repository, kind: RefKind, name: string): Promise<ObjectId> {
  const ref = refName(kind, name);
  if (kind === 'heads' && (await repo.currentBranch()) === ref) throw new UsageError(`cannot delete the current branch ${name}`);
  const id = await repo.store.refs.read(ref);
  if (!id) throw new NotFoundError(`${kind === 'heads' ? 'branch' : 'tag'} ${name}`);
  await repo.store.refs.cas(ref, id, null, `${kind === 'heads' ? 'branch' : 'tag'}: deleted`);
  return id;
}

/** Points HEAD at a branch (existing, or created at the current HEAD). */
export async function switchBranch(repo: Repository, name: string, create: boolean): Promise<void> {
  const ref = refName('heads', name);
  if (create) await createRef(repo, 'heads', name);
  else if (!(await repo.store.refs.read(ref))) throw new NotFoundError(`branch ${name}`);
  await repo.store.refs.writeHead({ kind: 'branch', ref });
}
