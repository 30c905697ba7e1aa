/**
 * `.ckpt/config` (shared with the team through Git) and `.ckpt/config.local` (credentials and
 * per-machine settings, git-ignored).
 */
import { CkptError } from '../core/errors.js';

export interface RemoteConfig {
  url: string;
  region?: string;
  endpoint?: string;
}

export interface CompressionConfig {
  /** 'auto' picks a codec per chunk; 'none' stores chunks plain. */
  mode: 'auto' | 'none';
  level: number;
  /** A full chunk at least every this many delta links. */
  maxDeltaChain: number;
}

export interface StoreConfig {
  version: 1;
  chunkSize: number;
  compression: CompressionConfig;
  remotes: Record<string, RemoteConfig>;
  /** Record the contents of changed code files with each commit. */
  withCode?: boolean;
}

export const DEFAULT_CHUNK_SIZE = 1 << 20;

/**
 * A restore decodes up to maxDeltaChain + 1 versions of a chunk, and a shorter bound stores more
 * versions whole. Measured on the real pretraining run of bench/storage.ts (10 checkpoints, fp32 +
 * AdamW), stored / file bytes: 0.794 at 1, 0.784 at 2, 0.776 at 3, 0.766 at 4, 0.765 at 8; 4 costs
 * next to nothing there and halves the longest chain a checkout of the newest commit walks before gc
 * turns the chains around.
 */
export const DEFAULT_MAX_DELTA_CHAIN = 4;

export function defaultConfig(chunkSize = DEFAULT_CHUNK_SIZE): StoreConfig {
  return {
    version: 1,
    chunkSize,
    compression: { mode: 'auto', level: 1, maxDeltaChain: DEFAULT_MAX_DELTA_CHAIN },
    remotes: {},
  };
}

export const MIN_CHUNK_SIZE = 4096;
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;

function isChunkSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

export function validateChunkSize(n: number): number {
  if (!isChunkSize(n)) throw new CkptError('E_USAGE', `chunk size must be a power of two between 4 KiB and 64 MiB, got ${n}`);
  return n;
}

/** Ranges `ckpt config` enforces on the settings a user may change. */
export const COMPRESSION_LEVELS = { min: 1, max: 19 };
export const DELTA_CHAIN_LIMITS = { min: 0, max: 64 };

const isInt = (v: unknown, min: number, max: number): boolean => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * A config read from disk, checked for shape and range: a config that is `null`, an array, or
 * holds a chunk size of 0 or -1 would otherwise crash or hang every command (a chunk size of 0
 * never advances). Each fault is E_CORRUPT naming the file and the field.
 */
export function parseConfig(text: string, where: string): StoreConfig {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new CkptError('E_CORRUPT', `${where} is not valid JSON`, { where });
  }
  const bad = (field: string, want: string, got: unknown): never => {
    throw new CkptError('E_CORRUPT', `${where}: ${field} must be ${want}, found ${JSON.stringify(got)?.slice(0, 80) ?? String(got)}`, { where, field });
  };
  if (!isPlainObject(v)) return bad('the config', 'a JSON object', v);
  if (v.version !== 1) throw new CkptError('E_CORRUPT', `${where}: unsupported store version ${String(v.version)}`, { where });
  const chunkSize = v.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!isChunkSize(chunkSize)) bad('chunkSize', 'a power of two from 4096 to 67108864', chunkSize);
  const base = defaultConfig(chunkSize as number);
  const c = v.compression ?? {};
  if (!isPlainObject(c)) return bad('compression', 'an object', c);
  const compression = { ...base.compression, ...c };
  if (compression.mode !== 'auto' && compression.mode !== 'none') bad('compression.mode', '"auto" or "none"', compression.mode);
  if (!isInt(compression.level, COMPRESSION_LEVELS.min, COMPRESSION_LEVELS.max)) {
    bad('compression.level', `an integer from ${COMPRESSION_LEVELS.min} to ${COMPRESSION_LEVELS.max}`, compression.level);
  }
  if (!isInt(compression.maxDeltaChain, DELTA_CHAIN_LIMITS.min, DELTA_CHAIN_LIMITS.max)) {
    bad('compression.maxDeltaChain', `an integer from ${DELTA_CHAIN_LIMITS.min} to ${DELTA_CHAIN_LIMITS.max}`, compression.maxDeltaChain);
  }
  const remotes = v.remotes ?? {};
  if (!isPlainObject(remotes)) return bad('remotes', 'an object', remotes);
  for (const [name, r] of Object.entries(remotes)) {
    if (!isPlainObject(r) || typeof r.url !== 'string') bad(`remotes.${name}`, 'an object with a url', r);
  }
  if (v.withCode !== undefined && typeof v.withCode !== 'boolean') bad('withCode', 'true or false', v.withCode);
  return { ...base, ...v, chunkSize, compression, remotes } as StoreConfig;
}
