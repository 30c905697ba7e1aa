/**
 * Typed errors. Every error ckpt raises on purpose is a CkptError with a stable `code`
 * (the CLI maps codes to exit codes) and structured `data` for `--json` output.
 */
export type ErrorCode =
  | 'E_FORMAT' // a checkpoint file is malformed
  | 'E_UNSAFE_PICKLE' // a pickle names a global that would run code
  | 'E_NOT_FOUND' // a revision, ref, object or path does not exist
  | 'E_AMBIGUOUS' // a revision prefix matches several objects
  | 'E_CORRUPT' // stored bytes do not match their id
  | 'E_REF_CONFLICT' // compare-and-swap on a ref lost a race
  | 'E_NON_FAST_FORWARD' // a push or pull would drop commits
  | 'E_LOCKED' // a lock is held by another live process
  | 'E_NOT_A_REPO' // no .ckpt/ found
  | 'E_EXISTS' // init over an existing store, branch that exists, ...
  | 'E_USAGE' // bad arguments
  | 'E_PRUNED' // the data of a commit was dropped by retention
  | 'E_REMOTE' // a transport failed
  | 'E_AUTH' // a server refused the credentials
  | 'E_IO' // the filesystem failed
  | 'E_CONFLICT' // a merge found tensors changed on both sides and no rule for them
  | 'E_MISMATCH'; // models to merge differ in tensors, dtypes, shapes or integer values

export class CkptError extends Error {
  readonly code: ErrorCode;
  readonly data: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}) {
    super(message);
    this.name = 'CkptError';
    this.code = code;
    this.data = data;
  }
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, ...this.data };
  }
}

/**
 * A malformed checkpoint. Parsers work on bytes and do not know the file's name: they throw
 * with the offset, and the caller that opened the file adds the path with `inFile`.
 */
export class FormatError extends CkptError {
  readonly format: string;
  readonly offset: number;
  file: string | undefined;
  private readonly fault: string;
  constructor(format: string, offset: number, fault: string, file?: string) {
    super('E_FORMAT', FormatError.describe(format, offset, fault, file), { format, offset, fault, file });
    this.name = 'FormatError';
    this.format = format;
    this.offset = offset;
    this.fault = fault;
    this.file = file;
  }
  inFile(file: string): this {
    this.file = file;
    this.message = FormatError.describe(this.format, this.offset, this.fault, file);
    this.data.file = file;
    return this;
  }
  private static describe(format: string, offset: number, fault: string, file?: string): string {
    return `${file ?? '<bytes>'}: invalid ${format} at offset ${offset}: ${fault}`;
  }
}

export class UnsafePickleError extends CkptError {
  constructor(readonly globals: string[], file?: string) {
    super(
      'E_UNSAFE_PICKLE',
      `${file ?? '<bytes>'}: refusing a pickle that would run code when loaded: ${globals.join(', ')} ` +
        `(pass --allow-unsafe-pickle to store it anyway)`,
      { globals, file },
    );
    this.name = 'UnsafePickleError';
  }
}

export class NotFoundError extends CkptError {
  constructor(what: string, data: Record<string, unknown> = {}) {
    super('E_NOT_FOUND', `not found: ${what}`, { what, ...data });
    this.name = 'NotFoundError';
  }
}

export class CorruptObjectError extends CkptError {
  constructor(id: string, where: string, detail = 'bytes do not match their id') {
    super('E_CORRUPT', `corrupt object ${id} in ${where}: ${detail}`, { id, where, detail });
    this.name = 'CorruptObjectError';
  }
}

export class RefConflictError extends CkptError {
  constructor(ref: string, expected: string | null, actual: string | null) {
    super(
      'E_REF_CONFLICT',
      `ref ${ref} moved while we worked (expected ${expected ?? 'none'}, found ${actual ?? 'none'}); run again`,
      { ref, expected, actual },
    );
    this.name = 'RefConflictError';
  }
}

export class UsageError extends CkptError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('E_USAGE', message, data);
    this.name = 'UsageError';
  }
}

export function isCkptError(e: unknown): e is CkptError {
  return e instanceof CkptError;
}
