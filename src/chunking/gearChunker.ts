/**
 * Content-defined chunking with a gear rolling hash (as in FastCDC and Xet), for verbatim bytes
 * and files ckpt cannot parse: a cut depends only on the last 32 bytes, so an insertion moves the
 * cuts near it and no others. Target 64 KiB, minimum 8 KiB, maximum 128 KiB.
 */
export const CDC_MIN = 8 * 1024;
export const CDC_MAX = 128 * 1024;
/** The top 16 bits of the hash all zero: one position in 65536, a 64 KiB mean past the minimum. */
const MASK = 0xffff0000;

// 256 fixed pseudo-random words (splitmix32 from a constant seed): part of the store format,
// since changing them moves every cut.
const GEAR = (() => {
  const t = new Uint32Array(256);
  let s = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    t[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return t;
})();

/**
 * Length of the next chunk of `data` starting at `start`. When fewer than CDC_MAX bytes remain
 * and `final` is false, returns -1: the caller must supply more bytes before a cut can be known.
 */
export function nextCut(data: Uint8Array, start: number, final: boolean): number {
  const avail = data.length - start;
  if (avail <= CDC_MIN) return final || avail === CDC_MAX ? avail : -1;
  const end = start + Math.min(avail, CDC_MAX);
  let h = 0;
  // the hash of a window needs 32 bytes of history: start it just before the minimum
  for (let i = start + CDC_MIN - 32; i < end; i++) {
    h = ((h << 1) + GEAR[data[i]]) >>> 0;
    if (i >= start + CDC_MIN && (h & MASK) === 0) return i + 1 - start;
  }
  if (end - start === CDC_MAX) return CDC_MAX;
  return final ? avail : -1;
}

/** All cuts of a buffer held whole in memory (small framing, tests). */
export function gearChunks(data: Uint8Array): number[] {
  const out: number[] = [];
  let pos = 0;
  while (pos < data.length) {
    const n = nextCut(data, pos, true);
    out.push(n);
    pos += n;
  }
  return out;
}
