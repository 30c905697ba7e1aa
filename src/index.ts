/** The ckpt library: the same operations the CLI runs. */
export { Repository } from './repo/repository.js';
export { commitFiles, type CommitOptions, type CommitResult } from './repo/commit.js';
export { checkout, type CheckoutOptions, type CheckoutResult } from './repo/checkout.js';
export { log, type LogEntry } from './repo/history.js';
export { showCommit, type ShowResult } from './repo/showCommit.js';
export { status } from './repo/status.js';
export { resolveRevision } from './repo/resolveRevision.js';
export { createRef, deleteRef, listRefs, switchBranch } from './repo/branches.js';
export { readLayout } from './repo/ingestFile.js';
export { parseCheckpoint, detectFormat, formatNames } from './formats/formatRegistry.js';
export { encodeSafetensorsHeader, writeSafetensors } from './formats/safetensors.js';
export * from './core/errors.js';
export type { Layout, Segment, TensorView } from './core/layout.js';
export type { Manifest, Tree, Commit, CommitMeta } from './core/objects.js';
export { Store } from './store/store.js';
