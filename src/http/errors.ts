/**
 * The engine's error codes, one table read top to bottom: what each one means and what the client
 * sees. `status` is the answer the engine writes itself; `undefined` where the connection is simply
 * dropped (a timeout, a lost peer) or the failure belongs to the handler (a response misuse).
 */
export const HTTP_ERRORS = {
  // Request head: answered with `status` (through the server's badRequest formatter), then closed.
  HTTP_REQUEST_LINE_TOO_LONG: { status: 414, message: 'request line too long' },
  HTTP_HEAD_TOO_LARGE: { status: 431, message: 'request head too large' },
  HTTP_TOO_MANY_HEADERS: { status: 431, message: 'too many header fields' },
  HTTP_BAD_REQUEST_LINE: { status: 400, message: 'malformed request line' },
  HTTP_BAD_METHOD: { status: 400, message: 'malformed method' },
  HTTP_BAD_TARGET: { status: 400, message: 'malformed request target' },
  HTTP_BAD_VERSION: { status: 400, message: 'malformed HTTP version' },
  HTTP_UNSUPPORTED_VERSION: { status: 505, message: 'unsupported HTTP version' },
  HTTP_BAD_LINE_ENDING: { status: 400, message: 'bare CR or LF in head' },
  HTTP_OBS_FOLD: { status: 400, message: 'obsolete line folding' },
  HTTP_BAD_HEADER: { status: 400, message: 'malformed header line' },
  HTTP_BAD_HEADER_NAME: { status: 400, message: 'malformed header name' },
  HTTP_BAD_HEADER_VALUE: { status: 400, message: 'invalid character in a header value' },
  HTTP_HEADER_VALUE_TOO_LARGE: { status: 400, message: 'header value too large' },
  HTTP_REPEATED_CONTENT_LENGTH: { status: 400, message: 'repeated Content-Length' },
  HTTP_BAD_CONTENT_LENGTH: { status: 400, message: 'malformed Content-Length' },
  HTTP_TRANSFER_ENCODING: { status: 400, message: 'Transfer-Encoding refused' },

  // Request body: the body stream fails with the error; the handler's answer is still sent.
  HTTP_BAD_CHUNKED_BODY: { status: undefined, message: 'malformed chunked framing' },
  HTTP_BODY_INCOMPLETE: { status: undefined, message: 'connection closed before the body was complete' },

  // Idle timeouts (one per timer kind): the body stream fails, the request is aborted, the socket dropped.
  HTTP_HEADER_TIMEOUT: { status: undefined, message: 'header timeout' },
  HTTP_BODY_IDLE_TIMEOUT: { status: undefined, message: 'body idle timeout' },
  HTTP_DRAIN_TIMEOUT: { status: undefined, message: 'drain idle timeout' },
  HTTP_ANSWER_TIMEOUT: { status: undefined, message: 'no answer to a malformed body' },
  HTTP_KEEP_ALIVE_TIMEOUT: { status: undefined, message: 'keep-alive timeout' },
  HTTP_WRITE_IDLE_TIMEOUT: { status: undefined, message: 'write idle timeout' },
  HTTP_LINGER_TIMEOUT: { status: undefined, message: 'linger timeout' },

  // Connection: the reason of the request's abort signal.
  HTTP_PEER_CLOSED: { status: undefined, message: 'client closed the connection' },
  HTTP_CONNECTION_CLOSED: { status: undefined, message: 'connection closed' },

  // Handler misuse of the response: thrown to the handler, or logged as its failure (then 500).
  HTTP_RESPONSE_STARTED: { status: undefined, message: 'response already started' },
  HTTP_NO_RESPONSE: { status: undefined, message: 'handler returned without responding' },
  HTTP_LENGTH_REQUIRED: { status: undefined, message: 'stream() needs a Content-Length header' },
  HTTP_RESPONSE_LENGTH_MISMATCH: { status: undefined, message: 'response body length differs from its Content-Length' },
  HTTP_BAD_RESPONSE_HEADER: { status: undefined, message: 'invalid response header' },
} as const satisfies Record<string, { status: number | undefined; message: string }>;

/** A stable code of the engine (see {@link HTTP_ERRORS}). */
export type HttpErrorCode = keyof typeof HTTP_ERRORS;

/** The codes of a refused request head (those with a status the engine answers). */
export type HeadErrorCode = {
  [C in HttpErrorCode]: (typeof HTTP_ERRORS)[C]['status'] extends number ? C : never;
}[HttpErrorCode];

/** Why a head was refused; the engine answers with `status` and closes the connection. */
export interface HeadError {
  status: number;
  /** Stable reason code, e.g. `HTTP_HEADER_VALUE_TOO_LARGE`. */
  code: HeadErrorCode;
  message: string;
  /** The method, when the request line could be read (lets a handler format its error). */
  method?: string | undefined;
  /** The headers read so far. */
  headers?: Record<string, string> | undefined;
}

// (Symbol.for: the same symbol in every copy of the package, so that a second installed copy's
// errors are still recognised)
const BRAND = Symbol.for('bits-upload.HttpError');

/**
 * An engine failure with a stable {@link HttpErrorCode}: the body stream fails with it, the request's
 * abort signal carries it, and the log line names it. `instanceof HttpError` also holds for an error
 * made by another installed copy of the package.
 *
 * @example
 * ```ts
 * req.body.on('error', (err) => {
 *   if (err instanceof HttpError && err.code === 'HTTP_BODY_IDLE_TIMEOUT') log.info('client went idle');
 * });
 * ```
 */
export class HttpError extends Error {
  declare readonly [BRAND]: true;

  constructor(
    readonly code: HttpErrorCode,
    message: string = HTTP_ERRORS[code].message,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'HttpError';
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** The brand, not the prototype chain, for HttpError itself; subclasses keep the usual check. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== HttpError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return isHttpError(value);
  }
}

/**
 * Whether `value` is an {@link HttpError}, from this copy of the package or another one.
 *
 * @example
 * ```ts
 * if (isHttpError(signal.reason)) log.info({ code: signal.reason.code }, 'request aborted');
 * ```
 */
export function isHttpError(value: unknown): value is HttpError {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}
