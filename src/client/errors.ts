import { clientHresultName, ClientHResult } from '../protocol/client-hresults.js';
import { errorContextName, formatErrorContext, formatHresult, HResult } from '../protocol/hresult.js';

/**
 * Every way a client job can fail, in one table: whether the failure is retried (transient), ends the
 * job for good (fatal) or stops it resumably (interrupted), and the HRESULT reported when the server
 * did not send one. A row without a kind is decided per error: its {@link BitsClientError} is built
 * with one.
 */
export const CLIENT_ERRORS = {
  /** The server answered with an error status; transient or fatal by spec §7.2 (`classifyServerError`). */
  BITS_CLIENT_SERVER_ERROR: { hresult: null },
  /** The connection could not be made, was lost, or stayed idle past the request idle timeout. */
  BITS_CLIENT_NETWORK: { kind: 'transient', hresult: ClientHResult.NetworkDisconnected },
  /** The server's certificate is not trusted (self-signed, expired, wrong name): no retry can fix it. */
  BITS_CLIENT_TLS: { kind: 'fatal', hresult: null },
  /**
   * Negotiate or NTLM could not be done on this side: no Kerberos ticket or no GSSAPI, a malformed
   * challenge, a server that failed mutual authentication. No retry can fix it.
   */
  BITS_CLIENT_AUTH: { kind: 'fatal', hresult: HResult.HttpErrorBase + 401 },
  /** The server broke the protocol (no session id on Create-Session, a nonsensical offset, ...). */
  BITS_CLIENT_INVALID_RESPONSE: { kind: 'fatal', hresult: ClientHResult.InvalidServerResponse },
  /** The server speaks no protocol this client knows. */
  BITS_CLIENT_PROTOCOL_MISMATCH: { kind: 'fatal', hresult: HResult.ProtocolMismatch },
  /** The upload source changed (size or modification time) during the job. */
  BITS_CLIENT_LOCAL_FILE_CHANGED: { kind: 'fatal', hresult: ClientHResult.LocalFileChanged },
  /** A local file could not be read or written. */
  BITS_CLIENT_LOCAL_FILE: { kind: 'fatal', hresult: null },
  /** 413 although fragments are already at the smallest size. */
  BITS_CLIENT_FRAGMENT_TOO_LARGE: { kind: 'fatal', hresult: HResult.HttpErrorBase + 413 },
  /** A download whose size the server does not tell (no Content-Length). */
  BITS_CLIENT_MISSING_FILE_SIZE: { kind: 'fatal', hresult: ClientHResult.MissingFileSize },
  /** A reply kept in memory would exceed 1 MiB. */
  BITS_CLIENT_REPLY_TOO_LARGE: { kind: 'fatal', hresult: HResult.TooLarge },
  /** Transient errors went on for longer than the no-progress timeout; the job can be resumed. */
  BITS_CLIENT_NO_PROGRESS: { kind: 'interrupted', hresult: ClientHResult.NoProgress },
  /** The job was stopped on request; it can be resumed. */
  BITS_CLIENT_INTERRUPTED: { kind: 'interrupted', hresult: null },
  /** The job was cancelled on request. */
  BITS_CLIENT_CANCELLED: { kind: 'fatal', hresult: null },
  /** A failure that is none of the above: a defect of this client (please report it), never retried. */
  BITS_CLIENT_INTERNAL: { kind: 'fatal', hresult: HResult.Fail },
} as const satisfies Record<string, { kind?: ErrorKind; hresult: number | null }>;

/** A stable code from {@link CLIENT_ERRORS}. */
export type ClientErrorCode = keyof typeof CLIENT_ERRORS;

/** How a failure affects its job. */
export type ErrorKind = 'transient' | 'fatal' | 'interrupted';

/** Details of a {@link BitsClientError}. */
export interface ClientErrorDetails {
  /** HTTP status of the answer, when the server answered. */
  status?: number | undefined;
  /** HRESULT: the server's `BITS-Error-Code`, or the client-side code of the failure. */
  hresult?: number | undefined;
  /** `BITS-Error-Context` sent by the server. */
  context?: number | undefined;
  /** What was being sent: a packet type (`Fragment`), `GET` or `HEAD`. */
  request?: string | undefined;
  /** Where it was sent. */
  url?: string | undefined;
  /** Overrides the table's kind; required for a code whose row has none (server errors, spec §7.2). */
  kind?: ErrorKind | undefined;
  /** The server's `Retry-After`, in ms: the next retry waits at least this long. */
  retryAfterMs?: number | undefined;
  cause?: unknown;
}

/** Brands a {@link BitsClientError}, so that {@link isBitsClientError} knows one from another installed copy of this package. */
const BRAND = Symbol.for('bits-upload.BitsClientError');

/**
 * The error every client job fails with: a stable `code`, whether it is transient, fatal or
 * interrupted, and what the server said (HTTP status, HRESULT, context).
 *
 * @example
 * ```ts
 * try { await upload({ file, url }).result; }
 * catch (err) { if (err instanceof BitsClientError && err.kind === 'interrupted') resumeLater(err); }
 * ```
 */
export class BitsClientError extends Error {
  readonly code: ClientErrorCode;
  readonly kind: ErrorKind;
  readonly status: number | undefined;
  readonly hresult: number | undefined;
  readonly context: number | undefined;
  readonly request: string | undefined;
  readonly url: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(code: ClientErrorCode, message: string, details: ClientErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'BitsClientError';
    // Not enumerable: the brand stays out of logs and JSON.
    Object.defineProperty(this, BRAND, { value: true });
    this.code = code;
    const row: { readonly kind?: ErrorKind; readonly hresult: number | null } = CLIENT_ERRORS[code];
    // A row without a kind whose error came without one is a defect; fatal is the safe reading.
    this.kind = details.kind ?? row.kind ?? 'fatal';
    this.status = details.status;
    this.hresult = details.hresult ?? row.hresult ?? undefined;
    this.context = details.context;
    this.request = details.request;
    this.url = details.url;
    this.retryAfterMs = details.retryAfterMs;
  }

  /** The HRESULT's name (`BG_E_SESSION_NOT_FOUND`, `BG_E_HTTP_ERROR_403`), when there is one. */
  get hresultName(): string | undefined {
    return this.hresult === undefined ? undefined : clientHresultName(this.hresult);
  }

  /** The fields of the error as plain JSON (for journals and `--json` output). */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      kind: this.kind,
      message: this.message,
      status: this.status,
      hresult: this.hresult === undefined ? undefined : formatHresult(this.hresult),
      hresultName: this.hresultName,
      context: this.context,
      request: this.request,
      url: this.url,
    };
  }
}

/**
 * One line saying what failed, for people: the request, the status, the HRESULT name and value, the
 * context, and the message.
 *
 * @example
 * ```ts
 * describeClientError(err);
 * // 'Fragment http://h/up/a.bin: HTTP 403, E_ACCESSDENIED (0x80070005), context 0x5 (remote file)'
 * ```
 */
export function describeClientError(err: BitsClientError): string {
  const parts: string[] = [];
  if (err.status !== undefined) parts.push(`HTTP ${err.status}`);
  if (err.hresult !== undefined) parts.push(`${err.hresultName} (${formatHresult(err.hresult)})`);
  if (err.context !== undefined) {
    const name = errorContextName(err.context);
    parts.push(`context ${formatErrorContext(err.context)}${name ? ` (${name})` : ''}`);
  }
  const where = [err.request, err.url].filter(Boolean).join(' ');
  const detail = parts.length ? parts.join(', ') : '';
  const head = [where, detail].filter(Boolean).join(': ');
  return head && !err.message.startsWith(head) ? `${head} — ${err.message}` : err.message;
}

/**
 * Whether a value is a {@link BitsClientError}, also one made by another installed copy of this
 * package (where `instanceof` fails): the class carries a `Symbol.for` brand.
 *
 * @example
 * ```ts
 * if (isBitsClientError(err) && err.kind === 'transient') retry();
 * ```
 */
export function isBitsClientError(value: unknown): value is BitsClientError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
}

/** Whether an error comes from the operating system (it has an errno code such as `ENOENT`, `EACCES`). */
function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  const e = err as { code?: unknown; errno?: unknown } | null;
  return typeof e?.code === 'string' && /^E[A-Z0-9]+$/.test(e.code);
}

/**
 * Any failure as a {@link BitsClientError}: client errors as they are, errors of the operating system
 * (a local file that cannot be read or written) as fatal `BITS_CLIENT_LOCAL_FILE`, anything else (a
 * `TypeError`, a Node `ERR_*` code: a defect, not a file problem) as fatal `BITS_CLIENT_INTERNAL`.
 *
 * @example
 * ```ts
 * toClientError(Object.assign(new Error('nope'), { code: 'EACCES' })).code; // 'BITS_CLIENT_LOCAL_FILE'
 * toClientError(new TypeError('x is undefined')).code;                     // 'BITS_CLIENT_INTERNAL'
 * ```
 */
export function toClientError(err: unknown): BitsClientError {
  if (isBitsClientError(err)) return err;
  const message = (err as Error | null)?.message ?? String(err);
  if (isSystemError(err)) return new BitsClientError('BITS_CLIENT_LOCAL_FILE', message, { cause: err });
  const name = (err as Error | null)?.name;
  return new BitsClientError('BITS_CLIENT_INTERNAL', `${name && name !== 'Error' ? `${name}: ` : ''}${message}`, { cause: err });
}

/**
 * The error a job stops with once it made no progress for `limitMs` (resumable): it names the limit
 * (not the measured idle time: timers fire a little late, and the limit is what was asked) and the
 * transient error retried last, if any.
 *
 * @example
 * ```ts
 * noProgressError(30_000, lastError).message; // 'no progress for 30 s; last error: the server is unavailable'
 * ```
 */
export function noProgressError(limitMs: number, last: BitsClientError | undefined): BitsClientError {
  const seconds = Number((limitMs / 1000).toFixed(3));
  const message = `no progress for ${seconds} s; ${last ? `last error: ${last.message}` : 'the request in flight was abandoned'}`;
  return new BitsClientError('BITS_CLIENT_NO_PROGRESS', message, {
    status: last?.status,
    context: last?.context,
    request: last?.request,
    url: last?.url,
    cause: last,
  });
}

/**
 * Whether a step's error is what the no-progress abort (`reason`) caused, not something that only
 * happened after it: the reason itself or an error it caused, or a network error of a connection it
 * cut (a reset, a body cut short).
 *
 * @example
 * ```ts
 * if (step.signal.aborted && causedByAbort(err, step.signal.reason)) throw step.signal.reason;
 * ```
 */
export function causedByAbort(err: unknown, reason: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e !== undefined && e !== null; depth++) {
    if (e === reason) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return isBitsClientError(err) && err.code === 'BITS_CLIENT_NETWORK' && err.kind === 'transient';
}
