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

/** What else ends a reply early, besides its size. */
export interface ReplyBounds {
  /**
   * Aborts the reply (the notification's deadline passed, or a newer request superseded it): the
   * source is destroyed and the stream fails with the signal's reason, even if the source never
   * sends another byte or ignores being destroyed.
   */
  readonly signal?: AbortSignal;
  /** Called for each chunk that passes (an idle deadline restarts here). */
  readonly onProgress?: () => void;
}

/**
 * Passes a reply through while it stays within `limit` bytes; one byte more fails the stream with
 * {@link replyTooLarge} and stops reading the source (so a runaway reply never fills the disk).
 * `bounds.signal` ends it early the same way (so a stalled reply never holds its request forever).
 * A source that is not read to its end is destroyed.
 *
 * @example
 * ```ts
 * await bytes.writeReply(id, limitReply(response, vdir.maxReplySize, { signal, onProgress: () => timer.refresh() }));
 * ```
 */
export function limitReply(source: Readable, limit: number, bounds: ReplyBounds = {}): Readable {
  const { signal, onProgress } = bounds;
  async function* counted(): AsyncGenerator<Buffer> {
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      if (!signal) return;
      onAbort = () => {
        source.destroy(signal.reason instanceof Error ? signal.reason : undefined);
        reject(signal.reason);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined); // (raced below; never an unhandled rejection)
    const chunks = (source as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
    let seen = 0;
    try {
      for (;;) {
        // Raced, not awaited alone: a source that neither sends nor ends must not outlast the signal.
        const next = await Promise.race([chunks.next(), aborted]);
        if (next.done) return;
        const buf = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        seen += buf.length;
        if (seen > limit) throw replyTooLarge(limit, `more than ${limit}`);
        onProgress?.();
        yield buf;
      }
    } finally {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      if (!source.readableEnded) source.destroy();
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
