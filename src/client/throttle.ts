import type { DownloadSink } from './download-sink.js';

/**
 * Shapes the bytes a job moves: `take` resolves once `bytes` more may go (it may wait), and rejects
 * when `signal` aborts. Only bodies are shaped (fragment bodies, downloaded bytes): the protocol's
 * own small requests never wait for it. Held in memory only, never journaled.
 *
 * @example
 * ```ts
 * const job = upload({ file, url, throttle: { take: (n, signal) => bucket.take(n, signal), pieceBytes: 65536 } });
 * ```
 */
export interface Throttle {
  take(bytes: number, signal: AbortSignal): Promise<void>;
  /** The size of the pieces a throttled upload sends (smaller pieces shape more smoothly); default 64 KiB. */
  readonly pieceBytes?: number | undefined;
}

/** Piece size of a throttled upload unless its throttle says otherwise. */
export const THROTTLED_PIECE_BYTES = 64 * 1024;

/**
 * A {@link DownloadSink} whose writes wait for a {@link Throttle}: the socket is read no faster than
 * the throttle allows, and TCP's flow control slows the sender down.
 *
 * @example
 * ```ts
 * const sink = new ThrottledSink(await FileSink.open(file, 0), throttle, () => job.signal);
 * ```
 */
export class ThrottledSink implements DownloadSink {
  constructor(
    private readonly inner: DownloadSink,
    private readonly throttle: Throttle,
    private readonly signal: () => AbortSignal,
  ) {}

  get offset(): number {
    return this.inner.offset;
  }

  get limit(): number | undefined {
    return this.inner.limit;
  }

  reset(): Promise<void> {
    return this.inner.reset();
  }

  async write(chunk: Buffer): Promise<void> {
    await this.inner.write(chunk);
    await this.throttle.take(chunk.length, this.signal());
  }

  checkpoint(): Promise<void> {
    return this.inner.checkpoint();
  }

  complete(): Promise<Buffer | undefined> {
    return this.inner.complete();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
