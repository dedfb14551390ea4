import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

/**
 * A pass-through that drops the first `count` bytes: how an overlapping fragment keeps the bytes
 * already stored and writes only its new tail (D4).
 *
 * @example
 * ```ts
 * pipeline(req.body, skipBytes(51), sink);
 * ```
 */
export function skipBytes(count: number): Transform {
  let left = count;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
      if (left >= chunk.length) {
        left -= chunk.length;
        done();
      } else if (left > 0) {
        const rest = chunk.subarray(left);
        left = 0;
        done(null, rest);
      } else done(null, chunk);
    },
  });
}
