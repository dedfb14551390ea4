import type { AckInfo } from '../protocol/ack-info.js';
import { ErrorContext, HResult } from '../protocol/hresult.js';
import { BitsClientError } from './errors.js';
import { classifyServerError } from './retry-policy.js';

function explain(status: number, hresult: number | undefined, context: number | undefined): string {
  if (context === ErrorContext.RemoteApplication) return status === 403 ? 'the server application refused the upload' : 'the server application failed';
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

/** What a server answered: an Ack as `readAck` reads it, or just the status of any other answer (a GET). */
export type ServerAnswer = Pick<AckInfo, 'status'> & Partial<Pick<AckInfo, 'hresult' | 'errorContext' | 'retryAfterMs'>>;

/**
 * The error for a server's failure answer, the one way every request of a job turns one into a
 * {@link BitsClientError}: HTTP status, the server's HRESULT (or BG_E_HTTP_ERROR_<status> when it sent
 * none), context, `Retry-After`, and transient/fatal by spec §7.2 for the request sent
 * (`classifyServerError`).
 *
 * @param answer the Ack as read by `readAck`, or `{ status }` of a plain HTTP answer
 * @param request the packet type that was sent, `GET` or `HEAD`
 * @param url where it was sent
 * @param kind overrides the classification (a session lost twice without progress is transient whatever the status)
 * @example
 * ```ts
 * serverError(readAck(403, {}), 'Create-Session', url).kind; // 'fatal'
 * serverError({ status: 503 }, 'GET', url).kind;              // 'transient'
 * ```
 */
export function serverError(answer: ServerAnswer, request: string, url: URL, kind?: 'transient' | 'fatal'): BitsClientError {
  const { status, hresult, errorContext } = answer;
  // A download's answer is plain HTTP: there is no BITS meaning to explain, only the status.
  const plain = request === 'GET' || request === 'HEAD';
  const message = plain ? `${request} ${url.href} answered ${status}` : explain(status, hresult, errorContext);
  return new BitsClientError('BITS_CLIENT_SERVER_ERROR', message, {
    status,
    hresult: hresult ?? HResult.HttpErrorBase + status,
    context: errorContext,
    request,
    url: url.href,
    kind: kind ?? classifyServerError(status, hresult, { packet: request }),
    retryAfterMs: answer.retryAfterMs,
  });
}
