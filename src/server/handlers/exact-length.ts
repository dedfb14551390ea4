import { Readable, pipeline } from 'node:stream';
import { isHttpError } from '../../http/errors.js';
import type { HttpRequest } from '../../http/types.js';
import { BitsError } from '../../protocol/errors.js';
import { skipBytes } from './skip-bytes.js';

/**
 * The bytes of a Fragment's body to be written: the body without its first `skip` bytes, which the
 * session already holds (D4). A Content-Length body is exactly the range's length (the engine frames
 * it). A chunked body (D13) is checked as it streams: never more than `length` bytes are passed on,
 * and the stream fails with `BITS_LENGTH_MISMATCH` once it is longer, or when it ends shorter, after
 * every byte within the range has been passed on (those are valid bytes at their offsets, kept and
 * acknowledged as received, never as a complete fragment). Malformed chunked framing fails it with
 * `BITS_TRANSFER_ENCODING`.
 *
 * @param length the Content-Range length
 * @example
 * ```ts
 * const written = await bytes.write(id, offset, fragmentSource(req, offset - range.first, range.length));
 * ```
 */
export function fragmentSource(req: HttpRequest, skip: number, length: number): Readable {
  if (!req.chunked) {
    if (skip === 0) return req.body;
    // pipeline() carries a failing body (the client went away) into the trimmed stream, and a
    // trimmed stream destroyed by the store (superseded) back to the body; its callback has nothing
    // to add, since the store reads the failure from the stream it consumes.
    return pipeline(req.body, skipBytes(skip), () => undefined);
  }
  // highWaterMark 0: the next piece is asked for only once the consumer has taken the last one, so
  // a length error never overtakes (and discards) bytes still buffered in the stream.
  return Readable.from(exactLength(req.body, skip, length), { objectMode: false, highWaterMark: 0 });
}

async function* exactLength(body: Readable, skip: number, length: number): AsyncGenerator<Buffer> {
  let seen = 0;
  const pass = function* (chunk: Buffer): Generator<Buffer> {
    // the part of [seen, seen + chunk.length) at or past `skip`
    const from = Math.max(0, skip - seen);
    if (from < chunk.length) yield from === 0 ? chunk : chunk.subarray(from);
  };
  let longer = false;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      const room = length - seen;
      if (chunk.length > room) {
        yield* pass(chunk.subarray(0, room));
        seen = length;
        longer = true;
        break;
      }
      yield* pass(chunk);
      seen += chunk.length;
    }
  } catch (err) {
    if (isHttpError(err) && err.code === 'HTTP_BAD_CHUNKED_BODY') throw new BitsError('BITS_TRANSFER_ENCODING', err.message, { cause: err });
    throw err;
  }
  if (longer) throw new BitsError('BITS_LENGTH_MISMATCH', `chunked body longer than its Content-Range length ${length}`);
  if (seen < length) throw new BitsError('BITS_LENGTH_MISMATCH', `chunked body of ${seen} bytes, Content-Range length ${length}`);
}
