/**
 * `ckpt config`: the shared settings a user may change after init, each validated. The chunk
 * size is fixed at init (changing it would stop new commits from deduplicating against old ones).
 */
import { UsageError } from '../core/errors.js';
import { COMPRESSION_LEVELS, DELTA_CHAIN_LIMITS, type StoreConfig } from '../store/storeConfig.js';
import type { Repository } from './repository.js';

type Value = string | number | boolean;

interface Setting {
  describe: string;
  get(c: StoreConfig): Value | undefined;
  set?(c: StoreConfig, raw: string): void;
}

function int(raw: string, key: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${key} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

const SETTINGS: Record<string, Setting> = {
  'compression.mode': {
    describe: 'auto (a codec per chunk when it saves space) or none',
    get: (c) => c.compression.mode,
    set: (c, raw) => {
      if (raw !== 'auto' && raw !== 'none') throw new UsageError(`compression.mode must be auto or none, got ${JSON.stringify(raw)}`);
      c.compression.mode = raw;
    },
  },
  'compression.level': {
    describe: 'zstd level, 1 (fast, default) to 19',
    get: (c) => c.compression.level,
    set: (c, raw) => (c.compression.level = int(raw, 'compression.level', COMPRESSION_LEVELS.min, COMPRESSION_LEVELS.max)),
  },
  'compression.maxDeltaChain': {
    describe: 'a full chunk at least every N delta links (bounds checkout work)',
    get: (c) => c.compression.maxDeltaChain,
    set: (c, raw) => (c.compression.maxDeltaChain = int(raw, 'compression.maxDeltaChain', DELTA_CHAIN_LIMITS.min, DELTA_CHAIN_LIMITS.max)),
  },
  withCode: {
    describe: 'store the contents of changed code files with every commit',
    get: (c) => c.withCode ?? false,
    set: (c, raw) => {
      if (raw !== 'true' && raw !== 'false') throw new UsageError(`withCode must be true or false, got ${JSON.stringify(raw)}`);
      c.withCode = raw === 'true';
    },
  },
  chunkSize: { describe: 'bytes per tensor chunk (fixed at init)', get: (c) => c.chunkSize },
};

function setting(key: string): Setting {
  const s = SETTINGS[key];
  if (!s) throw new UsageError(`unknown setting ${key}; known: ${Object.keys(SETTINGS).join(', ')}`);
  return s;
}

export function listSettings(repo: Repository): { key: string; value: Value | undefined; describe: string }[] {
  return Object.entries(SETTINGS).map(([key, s]) => ({ key, value: s.get(repo.store.config), describe: s.describe }));
}

export function getSetting(repo: Repository, key: string): Value | undefined {
  return setting(key).get(repo.store.config);
}

export async function setSetting(repo: Repository, key: string, raw: string): Promise<Value | undefined> {
  const s = setting(key);
  if (!s.set) throw new UsageError(`${key} cannot be changed after init`);
  const next = structuredClone(repo.store.config);
  s.set(next, raw);
  repo.store.config = next;
  await repo.store.saveConfig();
  return s.get(next);
}
