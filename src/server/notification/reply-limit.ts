import { Readable } from 'node:stream';
import { BitsError } from '../../protocol/errors.js';

/**
 * The error of a reply over the vdir's `maxReplySize`. The application's fault, so context `0x7`
 * (D11); BG_E_TOO_LARGE with status 500 because resending the last fragment cannot make the reply
 * smaller (clients treat it as fatal, as for an upload over the size limit, D16) and 413 would make
 * them shrink fragments instead.
 *
 * @example
 * ```ts
 * throw replyTooLarge(65_536, 'more than 65536');
 * ```
 */
export function replyTooLarge(limit: number, size: number | string): BitsError {
  return new BitsError('BITS_REPLY_TOO_LARGE', `the application's reply is ${size} bytes, over maxReplySize (${limit})`);
}

/**
 * Passes a reply through while it stays within `limit` bytes; one byte more fails the stream with
 * {@link replyTooLarge} and stops reading the source (so a runaway reply never fills the disk).
 *
 * @example
 * ```ts
 * await bytes.writeReply(id, limitReply(response, vdir.maxReplySize));
 * ```
 */
export function limitReply(source: Readable, limit: number): Readable {
  async function* counted(): AsyncGenerator<Buffer> {
    let seen = 0;
    for await (const chunk of source as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      seen += buf.length;
      if (seen > limit) throw replyTooLarge(limit, `more than ${limit}`);
      yield buf;
    }
  }
  return Readable.from(counted(), { objectMode: false });
}

/**
 * The size an in-memory reply has, or `undefined` for streamed ones.
 *
 * @example
 * ```ts
 * knownSize('ticket=42'); // 9
 * ```
 */
export function knownSize(reply: unknown): number | undefined {
  if (typeof reply === 'string') return Buffer.byteLength(reply);
  if (Buffer.isBuffer(reply)) return reply.length;
  return undefined;
}
