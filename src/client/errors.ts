import { clientHresultName, ClientHResult } from '../protocol/client-hresults.js';
import { formatHresult, HResult } from '../protocol/hresult.js';

/**
 * Every way a client job can fail, in one table: whether the failure is retried (transient), ends the
 * job for good (fatal) or stops it resumably (interrupted), and the HRESULT reported when the server
 * did not send one.
 */
export const CLIENT_ERRORS = {
  /** The server answered with an error status; transient or fatal by spec §7.2 (decided per error). */
  BITS_CLIENT_SERVER_ERROR: { kind: 'by-status', hresult: null },
  /** The connection could not be made, was lost, or stayed idle past the request idle timeout. */
  BITS_CLIENT_NETWORK: { kind: 'transient', hresult: ClientHResult.NetworkDisconnected },
  /** The server broke the protocol (no session id on Create-Session, a nonsensical offset, ...). */
  BITS_CLIENT_INVALID_RESPONSE: { kind: 'fatal', hresult: ClientHResult.InvalidServerResponse },
  /** The server speaks no protocol this client knows. */
  BITS_CLIENT_PROTOCOL_MISMATCH: { kind: 'fatal', hresult: 0x80200022 },
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
} as const satisfies Record<string, { kind: 'transient' | 'fatal' | 'interrupted' | 'by-status'; hresult: number | null }>;

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
  /** Overrides the table's kind (used for server errors, classified by spec §7.2). */
  kind?: ErrorKind | undefined;
  /** The server's `Retry-After`, in ms: the next retry waits at least this long. */
  retryAfterMs?: number | undefined;
  cause?: unknown;
}

const CONTEXT_NAMES: Record<number, string> = { 5: 'remote file', 7: 'remote application' };

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
    this.code = code;
    const row = CLIENT_ERRORS[code];
    const kind = details.kind ?? row.kind;
    this.kind = kind === 'by-status' ? 'fatal' : kind;
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
    const name = CONTEXT_NAMES[err.context];
    parts.push(`context 0x${err.context.toString(16).toUpperCase()}${name ? ` (${name})` : ''}`);
  }
  const where = [err.request, err.url].filter(Boolean).join(' ');
  const detail = parts.length ? parts.join(', ') : '';
  const head = [where, detail].filter(Boolean).join(': ');
  return head && !err.message.startsWith(head) ? `${head} — ${err.message}` : err.message;
}

/**
 * Whether a value is a {@link BitsClientError}.
 *
 * @example
 * ```ts
 * if (isBitsClientError(err) && err.kind === 'transient') retry();
 * ```
 */
export function isBitsClientError(value: unknown): value is BitsClientError {
  return value instanceof BitsClientError;
}
