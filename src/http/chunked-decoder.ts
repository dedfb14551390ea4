import { HttpError } from './errors.js';

/** Longest chunk-size line, extensions included, CRLF excluded. Real clients send a few hex digits. */
const MAX_CHUNK_LINE = 4096;

const CR = 0x0d;
const LF = 0x0a;
/** 1 to 16 hex digits, then optional extensions (`;name=value`, ignored): no CTLs anywhere. */
const SIZE_LINE = /^([0-9A-Fa-f]{1,16})(?:[ \t]*;[\t\x20-\x7e\x80-\xff]*)?$/;
const TRAILER_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*$/;

/**
 * A request body whose chunked framing is malformed. The engine fails the body stream with it; the
 * connection cannot be framed any further and closes after the answer.
 */
export class ChunkedBodyError extends HttpError {
  declare readonly code: 'HTTP_BAD_CHUNKED_BODY';
  constructor(message: string) {
    super('HTTP_BAD_CHUNKED_BODY', message);
    this.name = 'ChunkedBodyError';
  }
}

/** What one {@link ChunkedDecoder.push} found. */
export interface ChunkedOutput {
  /** Decoded body bytes (views into the input, no copies). */
  readonly data: Buffer[];
  /** How many input bytes belong to the body; the rest is the next request. */
  readonly consumed: number;
  /** Set when the framing is malformed; `data` holds what was decoded before the fault. */
  readonly error?: ChunkedBodyError;
}

/** Where the decoder is in the body. */
type Phase = 'size-line' | 'data' | 'data-crlf' | 'trailer' | 'done' | 'failed';

/**
 * Incremental decoder of a chunked body (RFC 9112 §7.1), fed whatever the socket delivers. Memory is
 * bounded: data is passed through as views of the input; only a partial size line (at most
 * {@link MAX_CHUNK_LINE}) or trailer section (at most `maxTrailers` bytes) is held. Extensions are
 * ignored, trailers are checked for shape and discarded. Bare CR or LF, a size that is not 1–16 hex
 * digits of a safe integer, or chunk data not followed by CRLF is an error.
 *
 * @example
 * ```ts
 * const d = new ChunkedDecoder(65536);
 * const out = d.push(Buffer.from('3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1…'));
 * // out.data: [<abc>], out.consumed: 15, d.done: true
 * ```
 */
export class ChunkedDecoder {
  private phase: Phase = 'size-line';
  /** The line being read (size line or trailer line), without its CRLF. */
  private line = '';
  /** Data bytes left in the current chunk. */
  private left = 0;
  /** Bytes of the CRLF after a chunk's data seen so far. */
  private crlfSeen = 0;
  private trailerBytes = 0;
  private decoded = 0;

  /** @param maxTrailers largest trailer section, in bytes */
  constructor(private readonly maxTrailers: number) {}

  /** Whether the last chunk and the trailers have been read. */
  get done(): boolean {
    return this.phase === 'done';
  }

  /** Decoded body bytes so far. */
  get length(): number {
    return this.decoded;
  }

  /** Decodes what it can of `input`. After `done` or an error, nothing more is consumed. */
  push(input: Buffer): ChunkedOutput {
    const data: Buffer[] = [];
    let at = 0;
    try {
      while (at < input.length && this.phase !== 'done' && this.phase !== 'failed') {
        at = this.step(input, at, data);
      }
    } catch (err) {
      if (!(err instanceof ChunkedBodyError)) throw err;
      this.phase = 'failed';
      return { data, consumed: at, error: err };
    }
    return { data, consumed: at };
  }

  /** Consumes input from `at` in the current phase; returns the new position. */
  private step(input: Buffer, at: number, data: Buffer[]): number {
    switch (this.phase) {
      case 'data': {
        const take = Math.min(this.left, input.length - at);
        data.push(input.subarray(at, at + take));
        this.left -= take;
        this.decoded += take;
        if (this.left === 0) {
          this.phase = 'data-crlf';
          this.crlfSeen = 0;
        }
        return at + take;
      }
      case 'data-crlf':
        if (input[at] !== (this.crlfSeen === 0 ? CR : LF)) throw new ChunkedBodyError('chunk data not followed by CRLF');
        if (++this.crlfSeen === 2) this.phase = 'size-line';
        return at + 1;
      case 'size-line':
      case 'trailer':
        return this.readLine(input, at);
      default:
        return input.length;
    }
  }

  /** Accumulates a line up to its LF (bounded), then acts on it. */
  private readLine(input: Buffer, at: number): number {
    const lf = input.indexOf(LF, at);
    const end = lf === -1 ? input.length : lf;
    this.line += input.toString('latin1', at, end);
    // (+1: the line's CR may have arrived without its LF)
    const room = this.phase === 'size-line' ? MAX_CHUNK_LINE + 1 : this.maxTrailers - this.trailerBytes + 1;
    if (this.line.length > room) {
      throw new ChunkedBodyError(this.phase === 'size-line' ? 'chunk-size line too long' : 'trailers too large');
    }
    if (lf === -1) return input.length;
    if (!this.line.endsWith('\r')) throw new ChunkedBodyError('bare LF in chunked framing');
    const line = this.line.slice(0, -1);
    this.line = '';
    if (line.includes('\r')) throw new ChunkedBodyError('bare CR in chunked framing');
    if (this.phase === 'size-line') this.onSizeLine(line);
    else this.onTrailerLine(line);
    return lf + 1;
  }

  private onSizeLine(line: string): void {
    const m = SIZE_LINE.exec(line);
    if (!m) throw new ChunkedBodyError(`malformed chunk-size line "${line.slice(0, 40)}"`);
    const size = Number.parseInt(m[1]!, 16);
    if (!Number.isSafeInteger(size)) throw new ChunkedBodyError('chunk size too large');
    if (size === 0) this.phase = 'trailer';
    else {
      this.left = size;
      this.phase = 'data';
    }
  }

  private onTrailerLine(line: string): void {
    if (line === '') {
      this.phase = 'done';
      return;
    }
    if (!TRAILER_LINE.test(line)) throw new ChunkedBodyError('malformed trailer field');
    this.trailerBytes += line.length + 2;
  }
}
