/**
 * Files ckpt cannot parse: one verbatim segment, which the chunker cuts by content so an
 * insertion does not shift every later chunk.
 */
import type { CheckpointFormat } from './checkpointFormat.js';

export const opaque: CheckpointFormat = {
  name: 'opaque',
  detect: () => true,
  async parse(src) {
    return {
      format: 'opaque',
      size: src.size,
      segments: src.size > 0 ? [{ kind: 'bytes', offset: 0, length: src.size }] : [],
    };
  },
};
