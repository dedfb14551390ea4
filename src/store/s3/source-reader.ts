import { Readable } from 'node:stream';

/**
 * Reads a source stream in pieces of chosen lengths (a part's missing bytes, a tail segment),
 * remembering whether the source itself failed, so that a write can tell a client that went away
 * from a storage failure.
 *
 * @example
 * ```ts
 * const reader = new SourceReader(req, signal);
 * await client.send(new PutObjectCommand({ ..., Body: reader.take(1000), ContentLength: 1000 }));
 * ```
 */
export class SourceReader {
  readonly #it: AsyncIterator<unknown>;
  #pending: Buffer | null = null;
  #ended = false;
  /** The source's failure (an error, its end before the promised length, an abort), once it failed. */
  failure: unknown = undefined;

  constructor(source: Readable, signal?: AbortSignal) {
    this.#it = source[Symbol.asyncIterator]();
    // The iterator listens only once it is read: a source failing before must not go unheard.
    source.on('error', (err: unknown) => {
      this.failure ??= err;
    });
    if (signal) {
      const stop = (): void => {
        source.destroy(signal.reason instanceof Error ? signal.reason : new Error('the write was superseded'));
      };
      if (signal.aborted) stop();
      else signal.addEventListener('abort', stop, { once: true });
      source.once('close', () => signal.removeEventListener('abort', stop));
    }
  }

  /** Whether the source has ended. */
  get ended(): boolean {
    return this.#ended && this.#pending === null;
  }

  /** The next bytes of the source, at most `max` of them; `null` at its end. */
  async next(max: number): Promise<Buffer | null> {
    for (;;) {
      if (this.#pending) {
        const chunk = this.#pending;
        if (chunk.length > max) {
          this.#pending = chunk.subarray(max);
          return chunk.subarray(0, max);
        }
        this.#pending = null;
        return chunk;
      }
      if (this.#ended) return null;
      let step: IteratorResult<unknown>;
      try {
        step = await this.#it.next();
      } catch (err) {
        this.failure ??= err;
        throw err;
      }
      if (step.done) {
        this.#ended = true;
        return null;
      }
      const value = step.value;
      const chunk = Buffer.isBuffer(value) ? value : typeof value === 'string' ? Buffer.from(value) : Buffer.from(value as Uint8Array);
      if (chunk.length > 0) this.#pending = chunk;
    }
  }

  /** Up to `max` bytes in one buffer: fewer only at the source's end. */
  async readUpTo(max: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let got = 0;
    while (got < max) {
      const chunk = await this.next(max - got);
      if (chunk === null) break;
      chunks.push(chunk);
      got += chunk.length;
    }
    return Buffer.concat(chunks, got);
  }

  /** Whether the source holds no more bytes (reads ahead one chunk, kept for later). */
  async atEnd(): Promise<boolean> {
    const chunk = await this.next(Number.MAX_SAFE_INTEGER);
    if (chunk === null) return true;
    this.#pending = chunk;
    return false;
  }

  /**
   * The next `length` bytes as a stream of exactly that many; it fails (and so does the source's
   * {@link SourceReader.failure}) when the source ends before.
   */
  take(length: number): Readable {
    return Readable.from(this.pieces(length), { objectMode: false });
  }

  /** The next `length` bytes, chunk by chunk. */
  async *pieces(length: number): AsyncGenerator<Buffer> {
    let left = length;
    while (left > 0) {
      const chunk = await this.next(left);
      if (chunk === null) {
        const err = new Error(`the source ended ${left} bytes before its announced length`);
        this.failure ??= err;
        throw err;
      }
      left -= chunk.length;
      yield chunk;
    }
  }
}
