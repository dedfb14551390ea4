import { BitsError } from '../../protocol/errors.js';
import { HResult } from '../../protocol/hresult.js';

/**
 * Thrown by an `onUploadComplete` hook to fail the upload's completing Ack the way a server
 * application's HTTP error would (D11): the Ack gets `status`, `BITS-Error-Code` =
 * `hresult` (default `0x80190000 + status`, BG_E_HTTP_ERROR_xxx) and context `0x7`. The session stays
 * usable, so the client's resend of the last fragment runs the hook again; a 403 makes Windows give up.
 *
 * @example
 * ```ts
 * throw new NotificationError(503, 'ticket database is down');
 * ```
 */
export class NotificationError extends BitsError {
  constructor(status: number, message: string, options?: { hresult?: number; cause?: unknown }) {
    if (!Number.isInteger(status) || status < 300 || status > 599) {
      throw new RangeError(`NotificationError status must be 300–599, got ${status}`);
    }
    super('BITS_APPLICATION_ERROR', message, {
      status,
      hresult: options?.hresult ?? HResult.HttpErrorBase + status,
      cause: options?.cause,
    });
    this.name = 'NotificationError';
  }
}
