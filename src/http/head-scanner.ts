import { HTTP_ERRORS } from './errors.js';
import type { HeadError } from './errors.js';
import type { HttpLimits } from './limits.js';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');
const CRLF2 = Buffer.from('\r\n\r\n');

/** What {@link scanHead} found at the start of the bytes received. */
export type HeadScan =
  /** Nothing but empty lines (skipped): no head has begun. */
  | { readonly kind: 'none' }
  /** A head has begun (`pending`: the bytes from its first one on) and is not complete yet. */
  | { readonly kind: 'partial'; readonly pending: Buffer }
  /** The stream has ended inside a head (`pending`): it will never be complete. */
  | { readonly kind: 'truncated'; readonly pending: Buffer }
  /** A complete head: its text (latin1, without the final empty line), and the bytes after it. */
  | { readonly kind: 'head'; readonly text: string; readonly rest: Buffer }
  /** The head breaks a size limit (414, 431): it is refused before it is parsed. */
  | { readonly kind: 'error'; readonly error: HeadError };

function refuse(code: 'HTTP_REQUEST_LINE_TOO_LONG' | 'HTTP_HEAD_TOO_LARGE'): HeadScan {
  const { status, message } = HTTP_ERRORS[code];
  return { kind: 'error', error: { status, code, message } };
}

/**
 * Finds the request head at the start of `data` (the bytes received and not yet used), without
 * parsing it. Empty lines before the request line are skipped (RFC 9112 §2.2). The size limits are
 * judged as the bytes arrive, complete head or not:
 * - the request line (the bytes before the first CRLF, or all of them while no CRLF has come, less
 *   a CR that is still waiting for its LF) longer than `maxRequestLine` is 414;
 * - a head longer than `maxHead` is 431.
 * Pure: the same bytes give the same answer.
 *
 * @param ended whether the client has sent FIN (no more bytes will come)
 * @example
 * ```ts
 * scanHead(Buffer.from('\r\nGET / HTTP/1.1\r\n\r\nGET'), DEFAULT_LIMITS);
 * // { kind: 'head', text: 'GET / HTTP/1.1', rest: <'GET'> }
 * scanHead(Buffer.from('GET / HTTP/1.1\r\nHost'), DEFAULT_LIMITS); // { kind: 'partial', pending: … }
 * ```
 */
export function scanHead(data: Buffer, limits: Pick<HttpLimits, 'maxRequestLine' | 'maxHead'>, ended = false): HeadScan {
  let start = 0;
  while (start + 1 < data.length && data[start] === CR && data[start + 1] === LF) start += 2;
  if (start === data.length) return { kind: 'none' };
  const pending = start > 0 ? data.subarray(start) : data;
  const crlf = pending.indexOf(CRLF);
  let lineLength = crlf === -1 ? pending.length : crlf;
  if (crlf === -1 && pending[lineLength - 1] === CR) lineLength--;
  if (lineLength > limits.maxRequestLine) return refuse('HTTP_REQUEST_LINE_TOO_LONG');
  const end = pending.indexOf(CRLF2);
  if (end === -1) {
    if (ended) return { kind: 'truncated', pending };
    return pending.length > limits.maxHead ? refuse('HTTP_HEAD_TOO_LARGE') : { kind: 'partial', pending };
  }
  if (end > limits.maxHead) return refuse('HTTP_HEAD_TOO_LARGE');
  return { kind: 'head', text: pending.toString('latin1', 0, end), rest: pending.subarray(end + 4) };
}
