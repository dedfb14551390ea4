import { BitsError } from '../../protocol/errors.js';
import { HResult } from '../../protocol/hresult.js';

/** The brand of a {@link NotificationError}, shared by every installed copy of the package. */
const kNotificationError = Symbol.for('bits-upload.NotificationError');

/** Statuses a hook may choose: those an HTTP application's failure can have too (D11). */
function validStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 300 && status <= 599;
}

/**
 * Thrown by an `onUploadComplete` hook to fail the upload's completing Ack the way a server
 * application's HTTP error would (D11): the Ack gets `status`, `BITS-Error-Code` =
 * `hresult` (default `0x80190000 + status`, BG_E_HTTP_ERROR_xxx) and context `0x7`. The session stays
 * usable, so the client's resend of the last fragment runs the hook again; a 403 makes Windows give up.
 *
 * A status outside 300–599 (or not an integer) is a mistake in the hook, never a reason for the
 * constructor to throw: the Ack is then 500 (`0x801901F4` unless `hresult` is given), and the message (so the request's log line)
 * names the status the hook gave.
 *
 * @example
 * ```ts
 * throw new NotificationError(503, 'ticket database is down');
 * ```
 */
export class NotificationError extends BitsError {
  readonly [kNotificationError] = true;

  constructor(status: number, message: string, options?: { hresult?: number; cause?: unknown }) {
    const ok = validStatus(status);
    const sent = ok ? status : 500;
    super('BITS_APPLICATION_ERROR', ok ? message : `${message} (the hook gave status ${String(status)}, not 300–599: sent 500)`, {
      status: sent,
      hresult: options?.hresult ?? HResult.HttpErrorBase + sent,
      cause: options?.cause,
    });
    this.name = 'NotificationError';
  }

  /** `instanceof NotificationError` holds for a NotificationError of any installed copy. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as { [kNotificationError]?: unknown })[kNotificationError] === true;
  }
}
