/**
 * BLAKE3, natively where the platform has a prebuilt binary (@napi-rs/blake-hash), else the
 * `blake3` package (WebAssembly). Both give the same digests; CKPT_BLAKE3=wasm forces the
 * fallback so tests can check that.
 */
import { createRequire } from 'node:module';

export interface Hasher {
  update(data: Uint8Array): Hasher;
  /** 32-byte digest as lowercase hex. */
  hex(): string;
}

interface Backend {
  name: 'native' | 'wasm';
  create(key?: Uint8Array): Hasher;
  deriveKey(context: string): Uint8Array;
  /** Keyed BLAKE3 of `data` at once, as hex. */
  keyedHex(key: Uint8Array, data: Uint8Array): string;
  /** Plain BLAKE3 of `data` at once, as hex. */
  hex(data: Uint8Array): string;
}

const require = createRequire(import.meta.url);

/** The package, or on Linux its glibc build directly (the package's loader first probes for musl). */
function loadNative(): typeof import('@napi-rs/blake-hash') {
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    try {
      return require(`@napi-rs/blake-hash-linux-${process.arch}-gnu`) as typeof import('@napi-rs/blake-hash');
    } catch {
      // musl, or not installed beside us: the package's loader decides
    }
  }
  return require('@napi-rs/blake-hash') as typeof import('@napi-rs/blake-hash');
}

function nativeBackend(): Backend {
  const mod = loadNative();
  const H = mod.Blake3Hasher;
  const wrap = (h: InstanceType<typeof H>): Hasher => {
    const w: Hasher = {
      update(data) {
        h.update(data);
        return w;
      },
      hex: () => h.digest('hex'),
    };
    return w;
  };
  // One keyed hasher per key for one-shot hashes, reset after each (a reset keeps the key):
  // making a native hasher costs more than hashing a metadata object, and a long log verifies
  // thousands. Only synchronous code uses them, so no two hashes ever share one at once.
  const oneShot = new Map<Uint8Array, InstanceType<typeof H>>();
  return {
    name: 'native',
    create: (key) => wrap(key ? H.newKeyed(Buffer.from(key.buffer, key.byteOffset, key.byteLength)) : new H()),
    deriveKey: (context) => new Uint8Array(H.deriveKey(context, new Uint8Array(0))),
    keyedHex: (key, data) => {
      let h = oneShot.get(key);
      if (!h) oneShot.set(key, (h = H.newKeyed(Buffer.from(key.buffer, key.byteOffset, key.byteLength))));
      h.update(data);
      const hex = h.digest('hex');
      h.reset();
      return hex;
    },
    hex: (data) => mod.blake3(data).toString('hex'),
  };
}

function wasmBackend(): Backend {
  const mod = require('blake3') as {
    createHash(): { update(d: Uint8Array): unknown; digest(enc: 'hex'): string };
    createKeyed(key: Buffer): { update(d: Uint8Array): unknown; digest(enc: 'hex'): string };
    deriveKey(context: string, material: Uint8Array): Buffer;
  };
  const wrap = (h: { update(d: Uint8Array): unknown; digest(enc: 'hex'): string }): Hasher => {
    const w: Hasher = {
      update(data) {
        h.update(data);
        return w;
      },
      hex: () => h.digest('hex'),
    };
    return w;
  };
  return {
    name: 'wasm',
    create: (key) => wrap(key ? mod.createKeyed(Buffer.from(key)) : mod.createHash()),
    deriveKey: (context) => new Uint8Array(mod.deriveKey(context, new Uint8Array(0))),
    keyedHex: (key, data) => wrap(mod.createKeyed(Buffer.from(key))).update(data).hex(),
    hex: (data) => wrap(mod.createHash()).update(data).hex(),
  };
}

function pickBackend(): Backend {
  if (process.env.CKPT_BLAKE3 !== 'wasm') {
    try {
      return nativeBackend();
    } catch {
      // no prebuilt binary for this platform: fall through to WebAssembly
    }
  }
  return wasmBackend();
}

const backend = pickBackend();

export const blake3Backend: 'native' | 'wasm' = backend.name;

/** A streaming hasher; keyed when a 32-byte key is given. */
export function createHasher(key?: Uint8Array): Hasher {
  return backend.create(key);
}

/** Plain BLAKE3-256 of bytes, as `b3sum` prints it. */
export function blake3Hex(data: Uint8Array): string {
  return backend.hex(data);
}

/** Keyed BLAKE3-256 of bytes at once (`key` the same array each time for the same key). */
export function keyedBlake3Hex(key: Uint8Array, data: Uint8Array): string {
  return backend.keyedHex(key, data);
}

/** BLAKE3 derive-key with empty key material: a fixed 32-byte key per context string. */
export function deriveKey(context: string): Uint8Array {
  return backend.deriveKey(context);
}
