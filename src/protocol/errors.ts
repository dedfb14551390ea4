import { ErrorContext, HResult } from './hresult.js';

/** One row of {@link ERRORS}. */
export interface ErrorRow {
  /** HTTP status of the Ack. */
  readonly status: number;
  /** The HRESULT sent in `BITS-Error-Code`, or `null` when the status alone identifies the error. */
  readonly hresult: number | null;
  /** The `BITS-Error-Context`. */
  readonly context: number;
  /** The message a {@link BitsError} gets when it is given none. */
  readonly message: string;
}

/**
 * Every failure the server reports on an Ack, in one table (fastify style), read top to bottom:
 * grouped by section, in status order within a section. Each row has the HTTP status, the HRESULT
 * sent in `BITS-Error-Code` (or `null`), the `BITS-Error-Context` and a default message. The
 * README's "Error codes" table lists the same rows; a test keeps the two in step.
 */
export const ERRORS = {
  // ── Request and framing: the packet itself is wrong (400 E_INVALIDARG) ──────────────────────────
  BITS_BAD_REQUEST: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'malformed request' },
  BITS_HTTP_VERSION: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'BITS_POST requires HTTP/1.1' },
  BITS_HEADER_TOO_LARGE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'a header value is too large' },
  BITS_MISSING_PACKET_TYPE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'no BITS-Packet-Type' },
  BITS_UNKNOWN_PACKET_TYPE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'unknown BITS-Packet-Type' },
  BITS_UNEXPECTED_BODY: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'this packet has no body' },
  BITS_MISSING_CONTENT_LENGTH: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'a Fragment needs Content-Length or chunked framing' },
  BITS_TRANSFER_ENCODING: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'Transfer-Encoding refused or malformed' },
  BITS_NO_PROTOCOL: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'no common protocol' },
  BITS_MISSING_SESSION_ID: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'no BITS-Session-Id' },
  BITS_BAD_CONTENT_RANGE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'malformed Content-Range' },
  BITS_LENGTH_MISMATCH: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'body length differs from the Content-Range length' },
  BITS_TOTAL_CHANGED: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: "total differs from the session's" },
  BITS_BAD_ENCODING: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'only the identity Content-Encoding is accepted' },
  BITS_BAD_PATH: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'path not allowed' },
  BITS_DESTINATION_IS_DIRECTORY: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'the destination is a directory' },

  // ── Access, policy and range: the request is well formed but not allowed as it is (4xx) ─────────
  BITS_ACCESS_DENIED: { status: 403, hresult: HResult.AccessDenied, context: ErrorContext.RemoteFile, message: 'access denied' },
  BITS_DESTINATION_EXISTS: { status: 409, hresult: HResult.AccessDenied, context: ErrorContext.RemoteFile, message: 'the destination exists and overwrites are off' },
  BITS_FRAGMENT_TOO_LARGE: { status: 413, hresult: null, context: ErrorContext.RemoteFile, message: 'fragment over maxFragmentSize' },
  BITS_RANGE_GAP: { status: 416, hresult: null, context: ErrorContext.RemoteFile, message: 'fragment starts past the next expected byte' },

  // ── Session, storage and server (5xx) ────────────────────────────────────────────────────────────
  BITS_SESSION_NOT_FOUND: { status: 500, hresult: HResult.SessionNotFound, context: ErrorContext.RemoteFile, message: 'session not found' },
  BITS_TOO_LARGE: { status: 500, hresult: HResult.TooLarge, context: ErrorContext.RemoteFile, message: 'upload over maximumUploadSize' },
  BITS_DISK_FULL: { status: 500, hresult: HResult.DiskFull, context: ErrorContext.RemoteFile, message: 'no space left' },
  // The client went away (or went idle) mid-body: normally never sent, since nobody is listening;
  // logged as a warning. Transient (500) in case a client does read it: it must simply resend.
  BITS_CLIENT_DISCONNECTED: { status: 500, hresult: HResult.Fail, context: ErrorContext.RemoteFile, message: 'the client went away mid-body' },
  // A newer request for the same session took over (D10): never sent, the connection is dropped.
  // Transient for the same reason as BITS_CLIENT_DISCONNECTED.
  BITS_SUPERSEDED: { status: 500, hresult: HResult.Fail, context: ErrorContext.RemoteFile, message: 'superseded by a newer request for the session' },
  BITS_INTERNAL: { status: 500, hresult: HResult.Fail, context: ErrorContext.RemoteFile, message: 'internal error' },
  BITS_UPLOADS_DISABLED: { status: 501, hresult: HResult.AccessDenied, context: ErrorContext.RemoteFile, message: 'uploads are not enabled here' },
  BITS_TOO_MANY_SESSIONS: { status: 503, hresult: null, context: ErrorContext.RemoteFile, message: 'too many sessions for this principal' },
  // A farm's database or object store cannot be reached: the client retries after Retry-After, and
  // nothing acknowledged is lost.
  BITS_STORE_UNAVAILABLE: { status: 503, hresult: null, context: ErrorContext.RemoteFile, message: 'storage temporarily unavailable' },

  // ── Server application (D11) ─────────────────────────────────────────────────────────────────────
  // The application's static reply URL is over 2,200 characters: a request-side limit (context 0x5).
  BITS_REPLY_URL_TOO_LONG: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile, message: 'static reply URL too long' },
  BITS_APPLICATION_TIMEOUT: { status: 408, hresult: HResult.NotificationTimeout, context: ErrorContext.RemoteApplication, message: 'the application did not answer in time' },
  // The status and HRESULT here are replaced by the application's own status (HResult.HttpErrorBase
  // + status) when it answered.
  BITS_APPLICATION_ERROR: { status: 500, hresult: HResult.HttpErrorBase + 500, context: ErrorContext.RemoteApplication, message: 'the application failed' },
  // The application's reply is over the vdir's maxReplySize: a resend cannot shrink it (not 413).
  BITS_REPLY_TOO_LARGE: { status: 500, hresult: HResult.TooLarge, context: ErrorContext.RemoteApplication, message: 'reply over maxReplySize' },
  BITS_APPLICATION_UNREACHABLE: { status: 502, hresult: HResult.HttpErrorBase + 502, context: ErrorContext.RemoteApplication, message: 'the application cannot be reached' },
} as const satisfies Record<string, ErrorRow>;

/** A stable error code from {@link ERRORS}. */
export type BitsErrorCode = keyof typeof ERRORS;

/** Options of {@link BitsError}. */
export interface BitsErrorOptions {
  readonly cause?: unknown;
  /** Overrides the table's status; only the application errors of D11 (the application's status) use it. */
  readonly status?: number;
  /** Overrides the table's HRESULT (D11). */
  readonly hresult?: number | null;
  /** Overrides the table's context. */
  readonly context?: number;
  /** The session's next expected offset, sent as `BITS-Received-Content-Range` (Fragment errors). */
  readonly received?: number;
}

/**
 * The brand of a {@link BitsError}: `Symbol.for`, so that an error made by another installed copy of
 * this package (a hook compiled against its own copy) is still recognised.
 */
const kBitsError = Symbol.for('bits-upload.BitsError');

/**
 * The one error class of the protocol layer: carries a stable `code`, the HTTP status, the HRESULT
 * and context of the Ack it turns into, a human message for the log (the table's default when none
 * is given) and, on Fragment errors, the next expected offset.
 *
 * @example
 * ```ts
 * throw new BitsError('BITS_BAD_CONTENT_RANGE', `cannot parse "${value}"`);
 * throw new BitsError('BITS_RANGE_GAP', undefined, { received: 300 });
 * ```
 */
export class BitsError extends Error {
  readonly code: BitsErrorCode;
  readonly status: number;
  readonly hresult: number | null;
  readonly context: number;
  readonly received: number | undefined;
  readonly [kBitsError] = true;

  constructor(code: BitsErrorCode, message?: string, options?: BitsErrorOptions) {
    const row: ErrorRow = ERRORS[code];
    super(message ?? row.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BitsError';
    this.code = code;
    this.status = options?.status ?? row.status;
    this.hresult = options?.hresult !== undefined ? options.hresult : row.hresult;
    this.context = options?.context ?? row.context;
    this.received = options?.received;
  }

  /**
   * `instanceof BitsError` holds for a BitsError of any installed copy of the package. Subclasses
   * keep the ordinary prototype check (unless they brand themselves, as `NotificationError` does).
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (this !== BitsError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return isBitsError(value);
  }
}

/**
 * Whether a value is a {@link BitsError}, from this copy of the package or another one.
 *
 * @example
 * ```ts
 * if (isBitsError(err) && err.code === 'BITS_SESSION_NOT_FOUND') { ... }
 * ```
 */
export function isBitsError(value: unknown): value is BitsError {
  return typeof value === 'object' && value !== null && (value as { [kBitsError]?: unknown })[kBitsError] === true;
}
