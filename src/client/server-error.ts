import type { AckInfo } from '../protocol/ack-info.js';
import { HResult } from '../protocol/hresult.js';
import { BitsClientError } from './errors.js';
import { classifyServerError } from './retry-policy.js';

function explain(status: number, hresult: number | undefined, context: number | undefined): string {
  if (context === 0x7) return status === 403 ? 'the server application refused the upload' : 'the server application failed';
  switch (hresult) {
    case HResult.SessionNotFound:
      return 'the server does not know the upload session';
    case HResult.TooLarge:
      return 'the file is larger than the server accepts';
    case HResult.InvalidArg:
      return 'the server rejected the request as invalid';
    case HResult.DiskFull:
      return 'the server is out of disk space';
    case HResult.AccessDenied:
      if (status === 501) return 'BITS uploads are not enabled at this URL';
      if (status === 409) return 'the destination exists and the server does not allow overwriting it';
      return 'access denied';
  }
  switch (status) {
    case 401:
      return 'authentication required or credentials refused';
    case 403:
      return 'access denied';
    case 404:
      return 'not found';
    case 407:
      return 'proxy authentication required';
    case 409:
      return 'conflict';
    case 501:
      return 'the server does not support BITS uploads at this URL';
    case 503:
      return 'the server is unavailable';
  }
  return `the server answered ${status}`;
}

/**
 * The error for an Ack that reports a failure: HTTP status, the server's HRESULT (or
 * BG_E_HTTP_ERROR_<status> when it sent none), context, and transient/fatal by spec §7.2.
 *
 * @param ack the Ack as read by `readAck`
 * @param request the packet type that was sent
 * @param url where it was sent
 * @param kind overrides the classification (Close/Cancel are never retried on 1xx–4xx)
 * @example
 * ```ts
 * ackError(readAck(403, {}), 'Create-Session', url).kind; // 'fatal'
 * ```
 */
export function ackError(ack: AckInfo & { retryAfterMs?: number }, request: string, url: URL, kind?: 'transient' | 'fatal'): BitsClientError {
  const hresult = ack.errorCode ?? HResult.HttpErrorBase + ack.status;
  return new BitsClientError('BITS_CLIENT_SERVER_ERROR', explain(ack.status, ack.errorCode, ack.errorContext), {
    status: ack.status,
    hresult,
    context: ack.errorContext,
    request,
    url: url.href,
    kind: kind ?? classifyServerError(ack.status, ack.errorCode),
    retryAfterMs: ack.retryAfterMs,
  });
}

/**
 * `Retry-After` in milliseconds (seconds or an HTTP date), capped at an hour; `undefined` when absent.
 *
 * @example
 * ```ts
 * retryAfterMs('60'); // 60000
 * ```
 */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const v = value.trim();
  const ms = /^\d{1,7}$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  return Number.isFinite(ms) ? Math.min(3_600_000, Math.max(0, ms)) : undefined;
}
