import { Readable } from 'node:stream';

/** Most body bytes held for a handler that is not reading before the socket is paused. */
const BODY_HIGH_WATER = 64 * 1024;
/** Size of the buffer that gathers small reads while the handler is not reading. */
const STAGE_SIZE = 16 * 1024;

/**
 * The request body: fed by the connection, paused and resumed for backpressure.
 *
 * A Readable counts its high-water mark in bytes, but every Buffer it holds costs a hundred bytes or
 * more besides: a client sending 1-byte chunks, or a byte per TCP segment, would have a handler that
 * is not reading yet (waiting for a session lock) hold tens of thousands of tiny Buffers, a hundred
 * times the body. So each read goes in as one Buffer ({@link feed}), and while the handler has bytes
 * left to read, small reads are copied into one staging buffer instead of being pushed one by one:
 * what is held is then, within a few Buffers, the decoded bytes themselves, and the room
 * {@link feed} reports (which pauses the socket) counts them all.
 *
 * @example
 * ```ts
 * const body = new BodyStream(() => socket.resume());
 * if (!body.feed([chunk])) socket.pause(); // resumed by the callback once the handler reads
 * body.finish();
 * ```
 */
export class BodyStream extends Readable {
  private stage: Buffer | null = null;
  private staged = 0;

  /** @param onDemand called when the handler wants more bytes (resume the socket) */
  constructor(private readonly onDemand: () => void) {
    super({ highWaterMark: BODY_HIGH_WATER });
    // The engine destroys the body with an error when the client goes away or goes idle. A handler
    // that has not started reading yet (waiting for a lock, say) has no 'error' listener: without
    // this one, that error would be an uncaught exception and take the whole server down. A handler
    // that reads later still gets the error (from the iterator, pipeline or its own listener).
    this.on('error', () => undefined);
  }

  /**
   * Takes the body bytes of one socket read (one or more views into it).
   *
   * @returns whether the handler has room for more (false: pause the socket until it reads)
   */
  feed(parts: readonly Buffer[]): boolean {
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > 0) {
      // Nothing unread (the handler is waiting for bytes), or a read large enough to be worth its
      // own Buffer: straight in, after whatever was staged so that the order stays.
      if (this.readableLength === 0 || length >= STAGE_SIZE) {
        this.flushStage();
        this.push(join(parts, length));
      } else {
        if (this.staged + length > STAGE_SIZE) this.flushStage();
        this.stage ??= Buffer.allocUnsafe(STAGE_SIZE);
        for (const part of parts) this.staged += part.copy(this.stage, this.staged);
      }
    }
    if (this.readableLength + this.staged < BODY_HIGH_WATER) return true;
    // Full: the socket will be paused, and only a read can resume it (_read). Hand the staged bytes
    // over first, so that they are not kept from a handler that reads everything else.
    this.flushStage();
    return false;
  }

  /** The body is complete: the staged bytes, then the end. */
  finish(): void {
    this.flushStage();
    this.push(null);
  }

  /** Hands the staged bytes to the stream as one Buffer. */
  flushStage(): void {
    if (this.staged === 0 || this.stage === null) return;
    const staged = this.stage.subarray(0, this.staged);
    this.stage = null;
    this.staged = 0;
    this.push(staged);
  }

  /**
   * Every consumer (iterator, 'data', pipe) takes bytes through read(): the staged ones join the
   * stream's buffer first. `read(0)` only refreshes (the stream calls it on its own to fill up to the
   * high-water mark): it leaves them staged, else each read would again become its own Buffer.
   */
  override read(size?: number): Buffer | null {
    if (size !== 0) this.flushStage();
    return super.read(size) as Buffer | null;
  }

  override _read(): void {
    this.onDemand();
  }
}

/** `parts` (of `length` bytes in all) as one Buffer: a copy when there are several. */
function join(parts: readonly Buffer[], length: number): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
}
