/**
 * HRESULT values that travel in `BITS-Error-Code` (spec §4.1, §4.3) and their names.
 *
 * @example
 * ```ts
 * formatHresult(HResult.SessionNotFound); // '0x8020001F'
 * ```
 */
export const HResult = {
  /** E_INVALIDARG: malformed or inconsistent request. */
  InvalidArg: 0x80070057,
  /** E_ACCESSDENIED: no access, uploads disabled, or destination exists. */
  AccessDenied: 0x80070005,
  /** BG_E_SESSION_NOT_FOUND. */
  SessionNotFound: 0x8020001f,
  /** BG_E_TOO_LARGE: the entity is larger than the vdir maximum. */
  TooLarge: 0x80200020,
  /** HRESULT_FROM_WIN32(ERROR_DISK_FULL). */
  DiskFull: 0x80070070,
  /** HRESULT_FROM_WIN32(ERROR_TIMEOUT)-style code used for back-end notification timeouts. */
  NotificationTimeout: 0x80070112,
  /** BG_E_HTTP_ERROR_xxx base: add the HTTP status. */
  HttpErrorBase: 0x80190000,
  /** E_FAIL: an unspecified failure (the server's own fault). */
  Fail: 0x80004005,
  /** BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH: no protocol both sides speak. */
  ProtocolMismatch: 0x80200022,
} as const;

const NAMES: Record<number, string> = {
  0x80070057: 'E_INVALIDARG',
  0x80070005: 'E_ACCESSDENIED',
  0x8020001f: 'BG_E_SESSION_NOT_FOUND',
  0x80200020: 'BG_E_TOO_LARGE',
  0x80070070: 'ERROR_DISK_FULL',
  0x80070112: 'ERROR_NOTIFICATION_TIMEOUT',
  0x80004005: 'E_FAIL',
  0x80200022: 'BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH',
};

/**
 * Formats an HRESULT as Windows prints it: `0x` and eight uppercase hex digits.
 *
 * @example
 * ```ts
 * formatHresult(0x80070057); // '0x80070057'
 * ```
 */
export function formatHresult(code: number): string {
  return '0x' + (code >>> 0).toString(16).toUpperCase().padStart(8, '0');
}

/**
 * Parses an HRESULT from a header value (`0x8020001F`, `8020001f` or a decimal number).
 * Returns `undefined` when the value is not a number.
 *
 * @example
 * ```ts
 * parseHresult('0x8020001f'); // 0x8020001F
 * ```
 */
export function parseHresult(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (/^0x[0-9a-f]{1,8}$/i.test(v)) return Number.parseInt(v.slice(2), 16) >>> 0;
  if (/^-?\d{1,10}$/.test(v)) return Number(v) >>> 0;
  if (/^[0-9a-f]{8}$/i.test(v)) return Number.parseInt(v, 16) >>> 0;
  return undefined;
}

/**
 * A readable name for an HRESULT (`BG_E_SESSION_NOT_FOUND`, `BG_E_HTTP_ERROR_404`), or its hex form.
 *
 * @example
 * ```ts
 * hresultName(0x80190194); // 'BG_E_HTTP_ERROR_404'
 * ```
 */
export function hresultName(code: number): string {
  const c = code >>> 0;
  const known = NAMES[c];
  if (known) return known;
  if (c > HResult.HttpErrorBase && c < HResult.HttpErrorBase + 600) {
    return `BG_E_HTTP_ERROR_${c - HResult.HttpErrorBase}`;
  }
  return formatHresult(c);
}

/** `BITS-Error-Context` values sent on the wire (spec §4.2). */
export const ErrorContext = {
  /** BG_ERROR_CONTEXT_REMOTE_FILE: the error arose in the BITS server. */
  RemoteFile: 0x5,
  /** BG_ERROR_CONTEXT_REMOTE_APPLICATION: the error came from the server application. */
  RemoteApplication: 0x7,
} as const;

const CONTEXT_NAMES: Readonly<Record<number, string>> = {
  [ErrorContext.RemoteFile]: 'remote file',
  [ErrorContext.RemoteApplication]: 'remote application',
};

/**
 * Formats a `BITS-Error-Context` as Windows sends it: `0x` and uppercase hex, no padding.
 *
 * @example
 * ```ts
 * formatErrorContext(ErrorContext.RemoteApplication); // '0x7'
 * ```
 */
export function formatErrorContext(context: number): string {
  return '0x' + (context >>> 0).toString(16).toUpperCase();
}

/**
 * A readable name for a `BITS-Error-Context`, or `undefined` for a value the spec does not name.
 *
 * @example
 * ```ts
 * errorContextName(0x5); // 'remote file'
 * ```
 */
export function errorContextName(context: number): string | undefined {
  return CONTEXT_NAMES[context];
}
