/**
 * A ZIP central-directory reader over a ByteSource. It reads only the directory and the local
 * headers, never entry data, and trusts no length: every offset and size is checked against the
 * file, and entries may not overlap each other or the directory records, so a format built on it
 * (PyTorch, .npz) can map each entry's data to exactly one span of the file.
 */
import type { ByteSource } from '../core/byteSource.js';
import { FormatError } from '../core/errors.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated; anything else is reported and left to the caller to refuse. */
  method: number;
  flags: number;
  compressedSize: number;
  uncompressedSize: number;
  /** CRC-32 from the central directory (torch writes it there, with zeros in the local header). */
  crc32: number;
  localHeaderOffset: number;
  /** First byte of the entry's (possibly compressed) data. */
  dataOffset: number;
}

export interface ZipArchive {
  entries: ZipEntry[];
  centralDirectoryOffset: number;
  centralDirectorySize: number;
  /** Start of the end records: the ZIP64 end record if there is one, else the classic EOCD. */
  endRecordsOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;

const EOCD_SIZE = 22;
const ZIP64_LOCATOR_SIZE = 20;
const ZIP64_EOCD_MIN = 56;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
const MAX_COMMENT = 0xffff;

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 0x1000000;

const names = new TextDecoder('utf-8');

/** Reads an entry list; `formatName` is the format reported in errors ('pytorch', 'npz', ...). */
export async function readZipEntries(src: ByteSource, formatName: string): Promise<ZipEntry[]> {
  return (await readZipArchive(src, formatName)).entries;
}

export async function readZipArchive(src: ByteSource, formatName: string): Promise<ZipArchive> {
  const size = src.size;
  const fail = (offset: number, fault: string): never => {
    throw new FormatError(formatName, Math.max(0, Math.min(offset, size - 1)), fault);
  };
  // A u64 that does not fit 2^53 cannot be a valid offset in any file we can read.
  const u64 = (b: Uint8Array, o: number, at: number): number => {
    const hi = u32(b, o + 4);
    if (hi >= 0x200000) fail(at, 'zip64 field exceeds 2^53');
    return hi * 0x100000000 + u32(b, o);
  };

  if (size < EOCD_SIZE) fail(0, `file of ${size} bytes is too short for a zip end record`);

  // The EOCD sits at the end, after a comment of at most 64 KiB; scan backwards for a signature
  // whose comment length reaches exactly the end of the file, so a signature inside the comment
  // cannot fool us.
  const tailStart = Math.max(0, size - EOCD_SIZE - MAX_COMMENT);
  const tail = await src.read(tailStart, size - tailStart);
  let eocd = -1;
  for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
    if (u32(tail, i) === SIG_EOCD && i + EOCD_SIZE + u16(tail, i + 20) === tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail(tailStart, 'no zip end-of-central-directory record');
  const eocdOffset = tailStart + eocd;
  const diskNo = u16(tail, eocd + 4);
  const cdDisk = u16(tail, eocd + 6);
  let entriesOnDisk = u16(tail, eocd + 8);
  let entryCount = u16(tail, eocd + 10);
  let cdSize = u32(tail, eocd + 12);
  let cdOffset = u32(tail, eocd + 16);
  let endRecordsOffset = eocdOffset;
  // Spans that no entry may overlap: the end records.
  const fixed: Array<[number, number, string]> = [[eocdOffset, size, 'end-of-central-directory record']];

  const needsZip64 =
    entriesOnDisk === 0xffff || entryCount === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff;
  const locOffset = eocdOffset - ZIP64_LOCATOR_SIZE;
  const hasLocator = locOffset >= 0 && u32(await src.read(locOffset, 4), 0) === SIG_ZIP64_LOCATOR;
  if (hasLocator) {
    const loc = await src.read(locOffset, ZIP64_LOCATOR_SIZE);
    if (u32(loc, 16) > 1) fail(locOffset, 'multi-disk zip archives are not supported');
    const z64 = u64(loc, 8, locOffset + 8);
    if (z64 + ZIP64_EOCD_MIN > locOffset) fail(locOffset + 8, `zip64 end record offset ${z64} runs past its locator`);
    const rec = await src.read(z64, ZIP64_EOCD_MIN);
    if (u32(rec, 0) !== SIG_ZIP64_EOCD) fail(z64, 'zip64 end record signature missing');
    const recSize = u64(rec, 4, z64 + 4);
    // The record's own size field counts from after the 12-byte signature+size prefix.
    if (recSize < ZIP64_EOCD_MIN - 12 || z64 + 12 + recSize > locOffset) {
      fail(z64 + 4, `zip64 end record size ${recSize} does not fit before its locator`);
    }
    if (u32(rec, 16) !== 0 || u32(rec, 20) !== 0) fail(z64 + 16, 'multi-disk zip archives are not supported');
    entriesOnDisk = u64(rec, 24, z64 + 24);
    entryCount = u64(rec, 32, z64 + 32);
    cdSize = u64(rec, 40, z64 + 40);
    cdOffset = u64(rec, 48, z64 + 48);
    endRecordsOffset = z64;
    fixed.push([z64, z64 + 12 + recSize, 'zip64 end record'], [locOffset, eocdOffset, 'zip64 end locator']);
  } else {
    if (needsZip64) fail(eocdOffset, 'end record defers to zip64 but there is no zip64 locator');
    if (diskNo !== 0 || cdDisk !== 0) fail(eocdOffset + 4, 'multi-disk zip archives are not supported');
  }
  if (entriesOnDisk !== entryCount) fail(eocdOffset + 8, 'multi-disk zip archives are not supported');
  if (cdOffset + cdSize > endRecordsOffset) {
    fail(cdOffset < size ? cdOffset : eocdOffset + 16, `central directory ${cdOffset}+${cdSize} runs past the end records at ${endRecordsOffset}`);
  }
  if (entryCount * CENTRAL_SIZE > cdSize) {
    fail(cdOffset, `${entryCount} entries cannot fit a central directory of ${cdSize} bytes`);
  }
  fixed.push([cdOffset, cdOffset + cdSize, 'central directory']);

  const cd = await src.read(cdOffset, cdSize);
  const entries: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < entryCount; i++) {
    const at = cdOffset + p;
    if (p + CENTRAL_SIZE > cd.length) fail(at, `central directory entry ${i} runs past the directory`);
    if (u32(cd, p) !== SIG_CENTRAL) fail(at, `central directory entry ${i} has no signature`);
    const flags = u16(cd, p + 8);
    const method = u16(cd, p + 10);
    const crc32 = u32(cd, p + 16);
    let compressedSize = u32(cd, p + 20);
    let uncompressedSize = u32(cd, p + 24);
    const nameLen = u16(cd, p + 28);
    const extraLen = u16(cd, p + 30);
    const commentLen = u16(cd, p + 32);
    const diskStart = u16(cd, p + 34);
    let localHeaderOffset = u32(cd, p + 42);
    const varEnd = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
    if (varEnd > cd.length) fail(at, `central directory entry ${i} runs past the directory`);
    const nameBytes = cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen);
    const name = names.decode(nameBytes);

    // ZIP64 extra: only the fields whose classic slot is saturated are present, in this order.
    const extraStart = p + CENTRAL_SIZE + nameLen;
    for (let e = extraStart; e + 4 <= extraStart + extraLen; ) {
      const id = u16(cd, e);
      const len = u16(cd, e + 2);
      if (e + 4 + len > extraStart + extraLen) fail(cdOffset + e, `extra field of entry ${name} runs past its end`);
      if (id === 0x0001) {
        let q = e + 4;
        const take = (): number => {
          if (q + 8 > e + 4 + len) fail(cdOffset + q, `zip64 extra of entry ${name} is too short`);
          const v = u64(cd, q, cdOffset + q);
          q += 8;
          return v;
        };
        if (uncompressedSize === 0xffffffff) uncompressedSize = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      e += 4 + len;
    }
    if (diskStart !== 0 && diskStart !== 0xffff) fail(at + 34, `entry ${name} starts on another disk`);
    if (flags & 1) fail(at + 8, `entry ${name} is encrypted`);
    if (method === 0 && compressedSize !== uncompressedSize) {
      fail(at + 20, `stored entry ${name} has compressed size ${compressedSize} but uncompressed size ${uncompressedSize}`);
    }
    if (localHeaderOffset + LOCAL_SIZE > cdOffset) {
      fail(at + 42, `local header of ${name} at ${localHeaderOffset} runs into the central directory`);
    }

    const lh = await src.read(localHeaderOffset, LOCAL_SIZE);
    if (u32(lh, 0) !== SIG_LOCAL) fail(localHeaderOffset, `no local header for ${name}`);
    const lNameLen = u16(lh, 26);
    const lExtraLen = u16(lh, 28);
    const dataOffset = localHeaderOffset + LOCAL_SIZE + lNameLen + lExtraLen;
    if (dataOffset + compressedSize > cdOffset) {
      fail(localHeaderOffset, `data of ${name} (${dataOffset}+${compressedSize}) runs into the central directory at ${cdOffset}`);
    }
    const lName = await src.read(localHeaderOffset + LOCAL_SIZE, lNameLen);
    if (!sameBytes(lName, nameBytes)) fail(localHeaderOffset + LOCAL_SIZE, `local header name differs from directory name ${name}`);

    entries.push({ name, method, flags, compressedSize, uncompressedSize, crc32, localHeaderOffset, dataOffset });
    p = varEnd;
  }
  if (p !== cd.length) fail(cdOffset + p, `central directory has ${cd.length - p} bytes after its ${entryCount} entries`);

  const spans: Array<[number, number, string]> = [
    ...fixed,
    ...entries.map((e): [number, number, string] => [e.localHeaderOffset, e.dataOffset + e.compressedSize, `entry ${e.name}`]),
  ].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < spans.length; i++) {
    const [s, , what] = spans[i];
    const [, prevEnd, prevWhat] = spans[i - 1];
    if (s < prevEnd) fail(s, `${what} at ${s} overlaps ${prevWhat} ending at ${prevEnd}`);
  }
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.name)) fail(e.localHeaderOffset, `duplicate entry name ${e.name}`);
    seen.add(e.name);
  }

  return { entries, centralDirectoryOffset: cdOffset, centralDirectorySize: cdSize, endRecordsOffset };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
