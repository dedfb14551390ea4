import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { HttpRequest } from '../http/types.js';
import type { BitsErrorCode } from '../protocol/errors.js';
import { redactTarget } from './redact.js';

/** The fields of a request's log line, in the order they are usually set. */
export interface RequestLogFields {
  /**
   * The request id: the balancer's `X-Request-Id` when it sent a usable one (so that its log and
   * this one join), otherwise one made here.
   */
  reqId: string;
  remote: string;
  method: string;
  /** The request target, credentials redacted. */
  url: string;
  /** The `Host` header, when sent. */
  host?: string;
  /** The `User-Agent` header (Windows BITS clients send `Microsoft BITS/<version>`), when sent. */
  ua?: string;
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
  /** Close-Session: the upload's final size in bytes. */
  size?: number;
  /** Close-Session: milliseconds spent placing the upload at its destination. */
  commitMs?: number;
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

/** The longest header value copied onto a log line (`User-Agent`, `Host`, `X-Request-Id`). */
const MAX_HEADER_LOGGED = 256;
/** An `X-Request-Id` worth keeping: short, printable, no spaces. */
const USABLE_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/**
 * The failures that are this server's own, which an operator has to act on: logged at `error`.
 * Other 5xx answers are the protocol's words for the client's situation (session not found, over
 * the size limit, too many sessions) or the server application's failure: logged at `warn`.
 */
const OWN_FAILURES: ReadonlySet<BitsErrorCode> = new Set(['BITS_INTERNAL', 'BITS_DISK_FULL', 'BITS_STORE_UNAVAILABLE']);

/** The header's value for a log line: cut to {@link MAX_HEADER_LOGGED} characters. */
function headerValue(value: string | undefined): string | undefined {
  return value === undefined || value.length <= MAX_HEADER_LOGGED ? value : `${value.slice(0, MAX_HEADER_LOGGED)}…`;
}

/** The level of a finished request's line (see {@link RequestLog.finish}). */
function levelOf(fields: Readonly<RequestLogFields>, credentialsOffered: boolean): 'info' | 'warn' | 'error' {
  const { status, code } = fields;
  if (code === 'BITS_CLIENT_DISCONNECTED') return 'warn';
  if (typeof status !== 'number' || status < 400) return 'info';
  if (status >= 500) return code === undefined || OWN_FAILURES.has(code) ? 'error' : 'warn';
  // (a challenge to a request without credentials is the first half of every authenticated upload)
  if (status === 401 && !credentialsOffered) return 'info';
  return 'warn';
}

/**
 * The one log line of a request, written through methods so that every field has one name and
 * one type. {@link RequestLog.finish} writes it: `error` for a 5xx that is the server's own failure
 * (internal error, disk full, store unavailable), `warn` for any other 4xx or 5xx and for a client
 * that went away, `info` otherwise (a 401 challenge to a request that offered no credentials too).
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
  private readonly credentialsOffered: boolean;

  constructor(req: Pick<HttpRequest, 'remoteAddress' | 'method' | 'target' | 'headers'>) {
    const { headers } = req;
    const given = headers['x-request-id'];
    this.fields = {
      reqId: given !== undefined && USABLE_REQUEST_ID.test(given) ? given : randomUUID(),
      remote: req.remoteAddress,
      method: req.method,
      url: redactTarget(req.target),
    };
    const host = headerValue(headers['host']);
    if (host !== undefined) this.fields.host = host;
    const ua = headerValue(headers['user-agent']);
    if (ua !== undefined) this.fields.ua = ua;
    this.credentialsOffered = headers['authorization'] !== undefined;
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
    logger[levelOf(this.fields, this.credentialsOffered)](this.fields, 'request');
  }
}
