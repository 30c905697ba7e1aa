/**
 * A worker thread of merge's codec pool (codecPool.ts): decodes and verifies stored chunks, and
 * encodes new ones, with the same functions the main thread would call, so results are the same
 * bytes. Buffers come and go transferred, not copied.
 */
import { parentPort } from 'node:worker_threads';
import { objectId } from '../core/objectId.js';
import { decodeChunk, encodeChunk, type EncodeOptions } from '../store/chunkCodec.js';

export type CodecRequest =
  | { seq: number; op: 'decode'; id: string; codec: number; planes: number; raw: number; data: Uint8Array; base?: Uint8Array }
  | { seq: number; op: 'encode'; raw: Uint8Array; opts: EncodeOptions };

export type CodecReply =
  | { seq: number; error: string; corrupt: boolean }
  | { seq: number; bytes: Uint8Array }
  | { seq: number; codec: number; planes: number; data: Uint8Array };

/** `b` as the whole of its own ArrayBuffer, so it can be transferred. */
export function owned(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer ? b : b.slice();
}

const port = parentPort;
if (port) {
  const reply = (r: CodecReply, b?: Uint8Array) => {
    try {
      port.postMessage(r, b ? [b.buffer as ArrayBuffer] : []);
    } catch {
      port.postMessage(r);
    }
  };
  port.on('message', (m: CodecRequest) => {
    const run = async (): Promise<void> => {
      if (m.op === 'decode') {
        const raw = await decodeChunk({ codec: m.codec, planes: m.planes, data: m.data }, m.raw, m.base);
        if (objectId('chunk', raw) !== m.id) return reply({ seq: m.seq, error: 'bytes do not match their id', corrupt: true });
        const bytes = owned(raw);
        return reply({ seq: m.seq, bytes }, bytes);
      }
      const enc = await encodeChunk(m.raw, m.opts);
      const data = owned(enc.data);
      reply({ seq: m.seq, codec: enc.codec, planes: enc.planes, data }, data);
    };
    run().catch((e: Error) => reply({ seq: m.seq, error: e.message, corrupt: m.op === 'decode' }));
  });
}
