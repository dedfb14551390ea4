import type { Logger } from 'pino';
import type { HeadError } from '../http/request-head.js';
import type { ResponseHeaders } from '../http/types.js';
import { errorAck } from '../protocol/ack.js';
import type { Ack } from '../protocol/ack.js';
import { BITS_METHOD, Header } from '../protocol/constants.js';
import { BitsError, isBitsError } from '../protocol/errors.js';
import { effectiveMethod } from './request-fields.js';
import type { RequestLog } from './request-log.js';
import { storageError } from './storage-error.js';

/** Seconds after which a client refused for its session limit may try again. */
const SESSION_LIMIT_RETRY_AFTER = 60;
/** Seconds a client waits before retrying while a farm's database or object store is unreachable. */
const STORE_RETRY_AFTER = 5;

/**
 * The one place where failures become Acks. A `BitsError` (of any installed copy of the package)
 * keeps its status, HRESULT and context, and its `received` becomes `BITS-Received-Content-Range`;
 * anything else goes through the storage mapping ({@link storageError}: a full disk, else
 * `BITS_INTERNAL`). With `report`, the code and reason go on the request's log line, and an internal
 * error is also logged with its stack.
 *
 * @example
 * ```ts
 * return errorToAck(err, sessionId, { log, logger });
 * ```
 */
export function errorToAck(err: unknown, sessionId: string | undefined, report?: { log: RequestLog; logger: Logger }): Ack {
  const error = isBitsError(err) ? err : storageError(err, 'request failed');
  if (report) {
    report.log.failed(error.message, error.code);
    if (error.code === 'BITS_INTERNAL') report.logger.error({ err }, 'internal error');
  }
  const retryAfter =
    error.code === 'BITS_TOO_MANY_SESSIONS' ? SESSION_LIMIT_RETRY_AFTER : error.code === 'BITS_STORE_UNAVAILABLE' ? STORE_RETRY_AFTER : undefined;
  return errorAck(error, { sessionId, receivedContentRange: error.received, retryAfter });
}

/**
 * Formats the answer to a request head the engine could not accept (D13, D21, header limits): a
 * BITS request gets an error Ack (414 and 431 keep their status, every other malformed head is
 * 400); anything else, or a 5xx, a bare status.
 *
 * @example
 * ```ts
 * new HttpServer({ handler, badRequest, limits });
 * ```
 */
export function badRequest(error: HeadError): { status: number; headers: ResponseHeaders } {
  const isBits = error.method !== undefined && effectiveMethod({ method: error.method, headers: error.headers ?? {} }) === BITS_METHOD;
  if (!isBits || error.status >= 500) return { status: error.status, headers: { 'Content-Length': '0' } };
  const code =
    error.code === 'HTTP_TRANSFER_ENCODING' ? 'BITS_TRANSFER_ENCODING' : error.code === 'HTTP_HEADER_VALUE_TOO_LARGE' ? 'BITS_HEADER_TOO_LARGE' : 'BITS_BAD_REQUEST';
  const sessionId = error.headers?.[Header.SessionId];
  return errorToAck(new BitsError(code, error.message, { status: error.status }), sessionId);
}
