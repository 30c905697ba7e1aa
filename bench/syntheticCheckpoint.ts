/** The benchmarks' synthetic checkpoint: a safetensors file of trained-like F32 and BF16 tensors. */
import { closeSync, openSync, writeSync } from 'node:fs';
import { encodeSafetensorsHeader } from '../src/formats/safetensors.js';

/**
 * Trained-like weights without the cost of a Gaussian: random signs and mantissas, exponents in
 * the narrow band real weights occupy (|w| in about [1e-4, 0.25]).
 */
export function writeCheckpoint(file: string, mb: number, seed: number): void {
  const bytes = mb * 1024 * 1024;
  const tensorBytes = 16 * 1024 * 1024;
  const tensors: { name: string; dtype: string; shape: number[]; length: number }[] = [];
  for (let i = 0, off = 0; off < bytes; i++, off += tensorBytes) {
    const bf16 = i % 4 === 3;
    const len = Math.min(tensorBytes, bytes - off);
    tensors.push({ name: `layers.${i}.weight`, dtype: bf16 ? 'BF16' : 'F32', shape: [len / (bf16 ? 2 : 4) / 1024, 1024], length: len });
  }
  const fd = openSync(file, 'w');
  writeSync(fd, encodeSafetensorsHeader(tensors));
  let s = seed >>> 0 || 1;
  const buf = new Uint32Array(tensorBytes / 4);
  for (const t of tensors) {
    for (let i = 0; i < buf.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      const exp = 114 + ((s >>> 8) % 11);
      buf[i] = ((s & 0x80000000) | (exp << 23) | ((s * 2654435761) >>> 9)) >>> 0;
    }
    if (t.dtype === 'BF16') {
      // two BF16 values per generated word: its high half, and its high half with other low bits
      const u16 = new Uint16Array(t.length / 2);
      const n = buf.length;
      for (let i = 0; i < n; i++) {
        u16[i] = buf[i] >>> 16;
        u16[i + n] = (buf[i] >>> 16) ^ (buf[i] & 0x7f);
      }
      writeSync(fd, new Uint8Array(u16.buffer, 0, t.length));
    } else writeSync(fd, new Uint8Array(buf.buffer, 0, t.length));
  }
  closeSync(fd);
}

