import { parseContentLength } from './content-length.js';

const CHUNKED = /^chunked$/i;

/** How a request body is delimited. */
export type BodyFraming =
  /** `Content-Length` bytes (0 when the request has neither header). */
  | { readonly kind: 'length'; readonly length: number; readonly declared: boolean }
  /** `Transfer-Encoding: chunked`, decoded by the transport. */
  | { readonly kind: 'chunked' };

/** Why a request's framing was refused; `code` is the engine's head error code. */
export interface FramingError {
  readonly code: 'HTTP_BAD_CONTENT_LENGTH' | 'HTTP_TRANSFER_ENCODING';
  readonly message: string;
}

/**
 * The framing rules of the engine and the `node:http` adapter (RFC 9112 §6, spec D13): a bounded
 * Content-Length ({@link parseContentLength}), or `Transfer-Encoding: chunked` alone. Transfer-Encoding
 * together with Content-Length, on HTTP/1.0, or with any coding but a single `chunked` (`gzip, chunked`,
 * `chunked, chunked`) is refused: whoever sits in front of us might frame such a request otherwise,
 * which is how requests are smuggled.
 *
 * @param contentLength the Content-Length header value, if any
 * @param transferEncoding the Transfer-Encoding header value (repeated fields joined with `, `), if any,
 *   without the SP/HTAB around it (the engine's head parser and `node:http` both take those off)
 * @example
 * ```ts
 * bodyFraming(undefined, 'chunked', '1.1'); // { ok: true, framing: { kind: 'chunked' } }
 * bodyFraming('3', 'chunked', '1.1');       // { ok: false, error: { code: 'HTTP_TRANSFER_ENCODING', … } }
 * ```
 */
export function bodyFraming(
  contentLength: string | undefined,
  transferEncoding: string | undefined,
  httpVersion: '1.0' | '1.1',
): { ok: true; framing: BodyFraming } | { ok: false; error: FramingError } {
  if (transferEncoding !== undefined) {
    const refuse = (message: string) => ({ ok: false as const, error: { code: 'HTTP_TRANSFER_ENCODING' as const, message } });
    if (contentLength !== undefined) return refuse('Transfer-Encoding together with Content-Length');
    if (httpVersion === '1.0') return refuse('Transfer-Encoding on an HTTP/1.0 request');
    // Exactly `chunked`, any case: the head parser has already taken off SP and HTAB, the only
    // whitespace around a field value. No trim(): it also strips U+00A0, which is byte 0xA0 (obs-text,
    // a legal part of the value) decoded as latin1, so `\xa0chunked` would pass as chunked while a
    // proxy in front sees an unknown coding and frames the body otherwise. (The `i` flag folds ASCII
    // only, unlike toLowerCase() on a wider string.)
    if (!CHUNKED.test(transferEncoding)) {
      return refuse(`Transfer-Encoding "${transferEncoding}" is not supported (only a single chunked)`);
    }
    return { ok: true, framing: { kind: 'chunked' } };
  }
  if (contentLength === undefined) return { ok: true, framing: { kind: 'length', length: 0, declared: false } };
  const length = parseContentLength(contentLength);
  if (length === undefined) return { ok: false, error: { code: 'HTTP_BAD_CONTENT_LENGTH', message: 'malformed Content-Length' } };
  return { ok: true, framing: { kind: 'length', length, declared: true } };
}
