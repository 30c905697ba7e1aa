/**
 * NumPy .npz: a zip of `<key>.npy` members. Stored members (np.savez) give one `tensor` segment
 * per array, named by the key; everything else (local headers, npy headers, descriptors, the
 * central directory) stays verbatim as `bytes`. Deflated members (np.savez_compressed) stay
 * opaque: re-deflating would not give the same bytes back, and a checkout must be bit-exact.
 */
import type { ByteSource } from '../core/byteSource.js';
import type { Segment } from '../core/layout.js';
import { normalizeSegments } from '../core/layout.js';
import type { CheckpointFormat } from './checkpointFormat.js';
import { parseNpyHeaderAt } from './npy.js';
import { readZipEntries } from './zipArchive.js';

const FORMAT = 'npz';
const LOCAL_HEADER = 30;
const METHOD_STORED = 0;

export const npz: CheckpointFormat = {
  name: FORMAT,

  detect(head) {
    if (head.length < LOCAL_HEADER || head[0] !== 0x50 || head[1] !== 0x4b || head[2] !== 0x03 || head[3] !== 0x04) {
      return false;
    }
    const nameLen = head[26] | (head[27] << 8);
    const visible = head.subarray(LOCAL_HEADER, Math.min(head.length, LOCAL_HEADER + nameLen));
    const name = new TextDecoder('utf-8').decode(visible);
    if (visible.length === nameLen) return name.endsWith('.npy');
    // The head (64 bytes) cuts long keys short, so guess from what torch.save does and numpy
    // does not: torch names every record under a root folder ("archive/data.pkl") and streams
    // its records with data descriptors (flag bit 3); np.savez seeks back to fill in sizes.
    const flags = head[6] | (head[7] << 8);
    return !name.includes('/') && (flags & 0x08) === 0;
  },

  async parse(src: ByteSource) {
    const entries = [...(await readZipEntries(src, FORMAT))].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
    const segments: Segment[] = [];
    const compressedMembers: string[] = [];
    const otherMembers: string[] = [];
    // A Map, so a key such as "__proto__" stays data.
    const arrays = new Map<string, { descr: unknown; shape: number[]; fortranOrder: boolean }>();
    const warnings: string[] = [];
    let pos = 0;
    for (const e of entries) {
      if (!e.name.endsWith('.npy')) {
        otherMembers.push(e.name);
        continue;
      }
      const key = e.name.slice(0, -'.npy'.length);
      if (e.method !== METHOD_STORED) {
        compressedMembers.push(key);
        continue;
      }
      const h = await parseNpyHeaderAt(src, e.dataOffset, e.dataOffset + e.compressedSize, FORMAT);
      arrays.set(key, { descr: h.descr, shape: h.shape, fortranOrder: h.fortranOrder });
      if (h.dtype === undefined) {
        warnings.push(`${key}: ${h.warning}`);
        continue;
      }
      segments.push({ kind: 'bytes', offset: pos, length: h.dataOffset - pos });
      segments.push({ kind: 'tensor', offset: h.dataOffset, length: h.dataLength, name: key, dtype: h.dtype, shape: h.shape });
      pos = h.dataOffset + h.dataLength;
    }
    segments.push({ kind: 'bytes', offset: pos, length: src.size - pos });
    if (compressedMembers.length > 0) {
      warnings.push(`${compressedMembers.length} compressed member(s) kept as opaque bytes: tensors are not deduplicated`);
    }

    return {
      format: FORMAT,
      size: src.size,
      segments: normalizeSegments(segments),
      info: {
        arrays: Object.fromEntries(arrays),
        ...(compressedMembers.length > 0 ? { compressedMembers } : {}),
        ...(otherMembers.length > 0 ? { otherMembers } : {}),
      },
      ...(warnings.length > 0 ? { warnings } : {}),
    };
  },
};
