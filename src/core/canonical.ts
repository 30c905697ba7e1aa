/**
 * Canonical msgpack: the same value always encodes to the same bytes, so metadata objects have
 * stable ids. Map keys are sorted, `undefined` fields are dropped, integers use the smallest
 * encoding and other numbers are float64.
 */
// msgpackr's plain entries: its main one for Node also loads the native string extractor
// (msgpackr-extract), tens of milliseconds of start-up for objects this small
import { Packr } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';
import { CkptError } from './errors.js';

const packr = new Packr({ useRecords: false, variableMapSize: true, useFloat32: 0 });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export type Canonical =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | Canonical[]
  | { [key: string]: Canonical | undefined };

function canonicalize(v: unknown, path: string): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return v;
    return Object.is(v, -0) ? 0 : v;
  }
  if (typeof v === 'bigint') {
    if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    return v;
  }
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map((x, i) => canonicalize(x, `${path}[${i}]`));
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonicalize(x, `${path}.${k}`);
    }
    return out;
  }
  throw new CkptError('E_USAGE', `cannot encode ${typeof v} at ${path}`);
}

export function encodeCanonical(value: unknown): Uint8Array {
  return packr.pack(canonicalize(value, '$'));
}

export function decodeCanonical<T = unknown>(bytes: Uint8Array): T {
  return unpackr.unpack(bytes) as T;
}
