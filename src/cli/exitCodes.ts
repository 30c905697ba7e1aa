/** Exit codes by error code: scripts can tell bad input from a missing revision from a race. */
import type { ErrorCode } from '../core/errors.js';

export const EXIT_CODES: Record<ErrorCode, number> = {
  E_USAGE: 2,
  E_EXISTS: 2,
  E_FORMAT: 3,
  E_UNSAFE_PICKLE: 3,
  E_NOT_FOUND: 4,
  E_AMBIGUOUS: 4,
  E_NOT_A_REPO: 4,
  E_PRUNED: 4,
  E_CORRUPT: 5,
  E_REF_CONFLICT: 6,
  E_NON_FAST_FORWARD: 6,
  E_LOCKED: 6,
  E_REMOTE: 7,
  E_AUTH: 7,
  E_IO: 8,
  E_CONFLICT: 1,
  E_MISMATCH: 3,
};

/** An error that is not a CkptError: a bug or an environment failure. */
export const EXIT_INTERNAL = 70;
