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

export function defaultConfig(chunkSize = DEFAULT_CHUNK_SIZE): StoreConfig {
  return {
    version: 1,
    chunkSize,
    compression: { mode: 'auto', level: 1, maxDeltaChain: 8 },
    remotes: {},
  };
}

export function validateChunkSize(n: number): number {
  if (!Number.isSafeInteger(n) || n < 4096 || n > 64 * 1024 * 1024 || (n & (n - 1)) !== 0) {
    throw new CkptError('E_USAGE', `chunk size must be a power of two between 4 KiB and 64 MiB, got ${n}`);
  }
  return n;
}

export function parseConfig(text: string, where: string): StoreConfig {
  let v: Partial<StoreConfig>;
  try {
    v = JSON.parse(text) as Partial<StoreConfig>;
  } catch {
    throw new CkptError('E_CORRUPT', `${where} is not valid JSON`, { where });
  }
  if (v.version !== 1) throw new CkptError('E_CORRUPT', `${where}: unsupported store version ${String(v.version)}`, { where });
  const base = defaultConfig(v.chunkSize ?? DEFAULT_CHUNK_SIZE);
  return { ...base, ...v, compression: { ...base.compression, ...(v.compression ?? {}) }, remotes: v.remotes ?? {} } as StoreConfig;
}
