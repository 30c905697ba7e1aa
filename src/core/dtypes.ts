/**
 * Element types of tensors: every safetensors dtype, plus GGML's block-quantized types (stored
 * as opaque blocks; ckpt never needs to decode them to store them).
 */
import { CkptError } from './errors.js';

export type DTypeKind = 'float' | 'int' | 'uint' | 'bool' | 'complex' | 'quant';

export interface DType {
  name: string;
  kind: DTypeKind;
  /** Bits per element; for block-quantized types, bits per block. */
  bits: number;
  /** Elements per block (1 for element types). */
  blockElems: number;
}

const table: DType[] = [];
const el = (name: string, kind: DTypeKind, bits: number) => table.push({ name, kind, bits, blockElems: 1 });
const blk = (name: string, elems: number, bytes: number) =>
  table.push({ name, kind: 'quant', bits: bytes * 8, blockElems: elems });

el('BOOL', 'bool', 8);
el('U8', 'uint', 8);
el('I8', 'int', 8);
el('F8_E5M2', 'float', 8);
el('F8_E4M3', 'float', 8);
el('F8_E8M0', 'float', 8);
el('F8_E4M3FNUZ', 'float', 8);
el('F8_E5M2FNUZ', 'float', 8);
el('I16', 'int', 16);
el('U16', 'uint', 16);
el('F16', 'float', 16);
el('BF16', 'float', 16);
el('I32', 'int', 32);
el('U32', 'uint', 32);
el('F32', 'float', 32);
el('F64', 'float', 64);
el('I64', 'int', 64);
el('U64', 'uint', 64);
el('C64', 'complex', 64);
el('F4', 'float', 4);
el('F6_E2M3', 'float', 6);
el('F6_E3M2', 'float', 6);
// GGML block types: elements per block -> bytes per block (ggml-common.h).
blk('Q4_0', 32, 18);
blk('Q4_1', 32, 20);
blk('Q5_0', 32, 22);
blk('Q5_1', 32, 24);
blk('Q8_0', 32, 34);
blk('Q8_1', 32, 36);
blk('IQ4_NL', 32, 18);
blk('MXFP4', 32, 17);
blk('Q2_K', 256, 84);
blk('Q3_K', 256, 110);
blk('Q4_K', 256, 144);
blk('Q5_K', 256, 176);
blk('Q6_K', 256, 210);
blk('Q8_K', 256, 292);
blk('IQ2_XXS', 256, 66);
blk('IQ2_XS', 256, 74);
blk('IQ2_S', 256, 82);
blk('IQ3_XXS', 256, 98);
blk('IQ3_S', 256, 110);
blk('IQ1_S', 256, 50);
blk('IQ1_M', 256, 56);
blk('IQ4_XS', 256, 136);
blk('TQ1_0', 256, 54);
blk('TQ2_0', 256, 66);

const byName = new Map(table.map((d) => [d.name, d]));

export function dtypeByName(name: string): DType | undefined {
  return byName.get(name);
}

export function allDTypes(): readonly DType[] {
  return table;
}

/** Byte planes for the byte-plane codec: one per byte of a float element, else 1. */
export function planesOf(name: string): number {
  const d = byName.get(name);
  if (!d || d.kind !== 'float' || d.bits % 8 !== 0) return 1;
  return d.bits / 8;
}

/**
 * Bytes a tensor of this dtype and shape occupies, in checked arithmetic. Returns undefined when
 * the shape is invalid (negative, fractional, overflowing 2^53) or the elements do not fill whole
 * bytes or whole blocks.
 */
export function tensorByteLength(dtype: DType, shape: readonly number[]): number | undefined {
  let n = 1n;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return undefined;
    n *= BigInt(d);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  }
  const be = BigInt(dtype.blockElems);
  if (n % be !== 0n) return undefined;
  const bits = (n / be) * BigInt(dtype.bits);
  if (bits % 8n !== 0n) return undefined;
  const bytes = bits / 8n;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  return Number(bytes);
}

export function requireDType(name: string): DType {
  const d = byName.get(name);
  if (!d) throw new CkptError('E_USAGE', `unknown dtype ${name}`);
  return d;
}
