/**
 * PyTorch's legacy (pre-1.6) `torch.save` format: a run of pickles followed by raw storages with
 * no index of where each starts. ckpt recognises it so the user is told, and stores it whole.
 */
import type { CheckpointFormat } from './checkpointFormat.js';

/** PROTO 2, LONG1 of 10 bytes: the pickle of torch's MAGIC_NUMBER 0x1950a86a20f9469cfc6c. */
const MAGIC_PICKLE = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

export const pytorchLegacy: CheckpointFormat = {
  name: 'pytorch-legacy',
  detect(head) {
    return head.length >= MAGIC_PICKLE.length && MAGIC_PICKLE.every((b, i) => head[i] === b);
  },
  async parse(src) {
    return {
      format: 'pytorch-legacy',
      size: src.size,
      segments: src.size > 0 ? [{ kind: 'bytes', offset: 0, length: src.size }] : [],
      warnings: ['legacy (pre-1.6) PyTorch format: stored as opaque bytes'],
    };
  },
};
