import { ErrorContext, HResult } from './hresult.js';

/**
 * Every failure the server reports on an Ack, in one table (fastify style): a stable code, the HTTP
 * status, the HRESULT sent in `BITS-Error-Code` (or `null` when the status alone identifies the
 * error) and the `BITS-Error-Context`.
 */
export const ERRORS = {
  BITS_BAD_REQUEST: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_HTTP_VERSION: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_HEADER_TOO_LARGE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_MISSING_PACKET_TYPE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_UNKNOWN_PACKET_TYPE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_UNEXPECTED_BODY: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_MISSING_CONTENT_LENGTH: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_TRANSFER_ENCODING: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_NO_PROTOCOL: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_MISSING_SESSION_ID: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_BAD_CONTENT_RANGE: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_LENGTH_MISMATCH: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_TOTAL_CHANGED: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_BAD_ENCODING: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_BAD_PATH: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_DESTINATION_IS_DIRECTORY: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  BITS_ACCESS_DENIED: { status: 403, hresult: HResult.AccessDenied, context: ErrorContext.RemoteFile },
  BITS_DESTINATION_EXISTS: { status: 409, hresult: HResult.AccessDenied, context: ErrorContext.RemoteFile },
  BITS_FRAGMENT_TOO_LARGE: { status: 413, hresult: null, context: ErrorContext.RemoteFile },
  BITS_RANGE_GAP: { status: 416, hresult: null, context: ErrorContext.RemoteFile },
  BITS_SESSION_NOT_FOUND: { status: 500, hresult: HResult.SessionNotFound, context: ErrorContext.RemoteFile },
  BITS_TOO_LARGE: { status: 500, hresult: HResult.TooLarge, context: ErrorContext.RemoteFile },
  BITS_DISK_FULL: { status: 500, hresult: HResult.DiskFull, context: ErrorContext.RemoteFile },
  // The client went away (or went idle) mid-body: normally never sent, since nobody is listening;
  // logged as a warning. Transient (500) in case a client does read it: it must simply resend.
  BITS_CLIENT_DISCONNECTED: { status: 500, hresult: 0x80004005, context: ErrorContext.RemoteFile },
  BITS_INTERNAL: { status: 500, hresult: 0x80004005, context: ErrorContext.RemoteFile },
  BITS_TOO_MANY_SESSIONS: { status: 503, hresult: null, context: ErrorContext.RemoteFile },
  BITS_UPLOADS_DISABLED: { status: 501, hresult: HResult.AccessDenied, context: ErrorContext.RemoteFile },
  BITS_REPLY_URL_TOO_LONG: { status: 400, hresult: HResult.InvalidArg, context: ErrorContext.RemoteFile },
  // Server-application failures (D11): the status and HRESULT default here are replaced by the
  // application's own status (HResult.HttpErrorBase + status) when it answered.
  BITS_APPLICATION_ERROR: { status: 500, hresult: HResult.HttpErrorBase + 500, context: ErrorContext.RemoteApplication },
  // The application's reply is over the vdir's maxReplySize: a resend cannot shrink it (not 413).
  BITS_REPLY_TOO_LARGE: { status: 500, hresult: HResult.TooLarge, context: ErrorContext.RemoteApplication },
  BITS_APPLICATION_TIMEOUT: { status: 408, hresult: HResult.NotificationTimeout, context: ErrorContext.RemoteApplication },
  BITS_APPLICATION_UNREACHABLE: { status: 502, hresult: HResult.HttpErrorBase + 502, context: ErrorContext.RemoteApplication },
} as const satisfies Record<string, { status: number; hresult: number | null; context: number }>;

/** A stable error code from {@link ERRORS}. */
export type BitsErrorCode = keyof typeof ERRORS;

/**
 * The one error class of the protocol layer: carries a stable `code`, the HTTP status, the HRESULT
 * and context of the Ack it turns into, and a human message for the log.
 *
 * @example
 * ```ts
 * throw new BitsError('BITS_BAD_CONTENT_RANGE', `cannot parse "${value}"`);
 * ```
 */
export class BitsError extends Error {
  readonly code: BitsErrorCode;
  readonly status: number;
  readonly hresult: number | null;
  readonly context: number;

  /**
   * @param options.status / options.hresult / options.context override the table's values; only the
   * application errors of D11 (whose status is the application's) use them.
   */
  constructor(
    code: BitsErrorCode,
    message: string,
    options?: { cause?: unknown; status?: number; hresult?: number | null; context?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BitsError';
    this.code = code;
    const row = ERRORS[code];
    this.status = options?.status ?? row.status;
    this.hresult = options?.hresult !== undefined ? options.hresult : row.hresult;
    this.context = options?.context ?? row.context;
  }
}

/**
 * Whether a value is a {@link BitsError}.
 *
 * @example
 * ```ts
 * if (isBitsError(err) && err.code === 'BITS_SESSION_NOT_FOUND') { ... }
 * ```
 */
export function isBitsError(value: unknown): value is BitsError {
  return value instanceof BitsError;
}
