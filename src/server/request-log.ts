import type { Logger } from 'pino';
import type { HttpRequest } from '../http/types.js';
import type { BitsErrorCode } from '../protocol/errors.js';
import { redactTarget } from './redact.js';

/** The fields of a request's log line, in the order they are usually set. */
export interface RequestLogFields {
  remote: string;
  method: string;
  /** The request target, credentials redacted. */
  url: string;
  /** The session id, shortened where it is a credential (session-capability vdirs). */
  session?: string;
  vdir?: string;
  /** Why authentication challenged or refused, or how it was satisfied. */
  auth?: string;
  user?: string;
  packet?: string;
  /** The Fragment's Content-Range, `first-last/total` or `*\/0`. */
  range?: string;
  /** Bytes the request wrote. */
  bytes?: number;
  /** What became of the server application's reply. */
  reply?: 'static' | 'generated' | 'empty upload';
  /** Whether Close-Session placed the upload at its destination. */
  committed?: boolean;
  /** The status sent, or what happened instead of a status. */
  status?: number | 'superseded' | 'served';
  /** The `BITS-Error-Code` sent. */
  error?: string;
  code?: BitsErrorCode;
  /** Why the request failed or found nothing. */
  reason?: string;
  /** The next expected offset a superseded request left. */
  received?: number;
  /** Duration in milliseconds. */
  ms?: number;
}

/**
 * The one log line of a request, written through methods so that every field has one name and
 * one type. {@link RequestLog.finish} writes it: a warning for a 5xx or a client that went away,
 * info otherwise.
 *
 * @example
 * ```ts
 * const log = new RequestLog(req);
 * log.set('vdir', '/up');
 * log.answered(200);
 * log.finish(logger);
 * ```
 */
export class RequestLog {
  private readonly started = process.hrtime.bigint();
  private readonly fields: RequestLogFields;

  constructor(req: Pick<HttpRequest, 'remoteAddress' | 'method' | 'target'>) {
    this.fields = { remote: req.remoteAddress, method: req.method, url: redactTarget(req.target) };
  }

  /**
   * Sets one field (the typed way handlers add what they know: `range`, `bytes`, `reply`, …).
   *
   * @example
   * ```ts
   * ctx.log.set('bytes', written);
   * ```
   */
  set<K extends keyof RequestLogFields>(key: K, value: RequestLogFields[K]): void {
    this.fields[key] = value;
  }

  /** Records the status sent and, for an error Ack, its `BITS-Error-Code`. */
  answered(status: number, errorCode?: string): void {
    this.fields.status = status;
    if (errorCode) this.fields.error = errorCode;
  }

  /** Records why a request failed (a code when one applies). */
  failed(reason: string, code?: BitsErrorCode): void {
    if (code !== undefined) this.fields.code = code;
    this.fields.reason = reason;
  }

  /** Writes the line, with the request's duration, and hands its fields to `observe` (the metrics). */
  finish(logger: Logger, observe?: (fields: Readonly<RequestLogFields>) => void): void {
    this.fields.ms = Number((process.hrtime.bigint() - this.started) / 1000n) / 1000;
    observe?.(this.fields);
    const { status, code } = this.fields;
    if ((typeof status === 'number' && status >= 500) || code === 'BITS_CLIENT_DISCONNECTED') logger.warn(this.fields, 'request');
    else logger.info(this.fields, 'request');
  }
}
