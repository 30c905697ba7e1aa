/**
 * Pinned content-defined cuts (src/chunking/gearChunker.ts): fixed cut lengths for a seeded
 * input, so opaque bytes written by an older version keep deduplicating; and the property the
 * chunker exists for: an insertion moves only the cuts near it.
 */
import { describe, expect, it } from 'vitest';
import { CDC_MAX, CDC_MIN, gearChunks, nextCut } from '../../src/chunking/gearChunker.js';
import { gearInput } from './goldenInputs.js';

const CUTS = [131072, 56031, 39357, 91406, 26624, 39279, 31567, 18173, 131072, 51158, 16201, 131072, 131072, 41710, 97426, 8366, 6990];

/** Absolute end offsets of the chunks. */
const ends = (lengths: number[]) => {
  let at = 0;
  return lengths.map((n) => (at += n));
};

describe('gear chunker', () => {
  const data = gearInput();

  it('bounds: 8 KiB minimum, 128 KiB maximum', () => {
    expect([CDC_MIN, CDC_MAX]).toEqual([8192, 131072]);
  });

  it('cuts a seeded MiB at fixed points', () => {
    expect(gearChunks(data)).toEqual(CUTS);
  });

  it('needs more bytes before it can place a cut, unless told the input is final', () => {
    expect(nextCut(data.subarray(0, 20000), 0, false)).toBe(-1);
    expect(nextCut(data.subarray(0, 20000), 0, true)).toBe(20000);
  });

  it('an insertion moves only the cuts near it; the rest shift by its length', () => {
    const at = 300_000;
    const insert = new Uint8Array(1000).fill(0x5a);
    const edited = new Uint8Array(data.length + insert.length);
    edited.set(data.subarray(0, at));
    edited.set(insert, at);
    edited.set(data.subarray(at), at + insert.length);
    const before = ends(CUTS);
    const after = ends(gearChunks(edited));
    // every cut before the insertion is kept
    for (const e of before.filter((x) => x <= at)) expect(after).toContain(e);
    // past the first content-defined cut after it, every old cut reappears shifted
    const resync = before.find((e) => e > at + CDC_MAX)!;
    for (const e of before.filter((x) => x >= resync)) expect(after).toContain(e + insert.length);
    const moved = after.filter((e) => !before.includes(e) && !before.includes(e - insert.length));
    expect(moved.length).toBeLessThanOrEqual(2);
  });
});
