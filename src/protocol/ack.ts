import { formatErrorContext, formatHresult } from './hresult.js';
import { PacketType, WireHeader } from './constants.js';
import type { BitsError } from './errors.js';

/** An Ack ready to be written: status and headers (the body is always empty). */
export interface Ack {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** Headers an Ack may carry beyond the common ones. */
export interface AckFields {
  sessionId?: string | undefined;
  protocol?: string;
  receivedContentRange?: number | undefined;
  hostId?: string | null | undefined;
  hostIdFallbackTimeout?: number | undefined;
  replyUrl?: string | undefined;
  acceptEncoding?: string;
  /** Seconds after which a 503 may be retried. */
  retryAfter?: number | undefined;
}

function fieldHeaders(fields: AckFields): Record<string, string> {
  const h: Record<string, string> = { [WireHeader.PacketType]: PacketType.Ack, [WireHeader.ContentLength]: '0' };
  if (fields.protocol !== undefined) h[WireHeader.Protocol] = fields.protocol;
  if (fields.sessionId !== undefined) h[WireHeader.SessionId] = fields.sessionId;
  if (fields.acceptEncoding !== undefined) h[WireHeader.AcceptEncoding] = fields.acceptEncoding;
  if (fields.hostId) {
    h[WireHeader.HostId] = fields.hostId;
    if (fields.hostIdFallbackTimeout !== undefined) {
      h[WireHeader.HostIdFallbackTimeout] = String(fields.hostIdFallbackTimeout);
    }
  }
  if (fields.receivedContentRange !== undefined) {
    h[WireHeader.ReceivedContentRange] = String(fields.receivedContentRange);
  }
  if (fields.replyUrl !== undefined) h[WireHeader.ReplyUrl] = fields.replyUrl;
  if (fields.retryAfter !== undefined) h[WireHeader.RetryAfter] = String(fields.retryAfter);
  return h;
}

/**
 * Builds a success Ack (200).
 *
 * @example
 * ```ts
 * okAck({ sessionId: id, receivedContentRange: 300 });
 * // { status: 200, headers: { 'BITS-Packet-Type': 'Ack', 'Content-Length': '0', ... } }
 * ```
 */
export function okAck(fields: AckFields = {}): Ack {
  return { status: 200, headers: fieldHeaders(fields) };
}

/**
 * Builds the error Ack for a {@link BitsError}: its status, `BITS-Error-Code` (when the error has an
 * HRESULT) and `BITS-Error-Context`. The session id is echoed whenever the request carried one (D14).
 *
 * @example
 * ```ts
 * errorAck(new BitsError('BITS_SESSION_NOT_FOUND', 'gone'), { sessionId: id });
 * // status 500, BITS-Error-Code: 0x8020001F, BITS-Error-Context: 0x5
 * ```
 */
export function errorAck(error: BitsError, fields: AckFields = {}): Ack {
  const h = fieldHeaders(fields);
  if (error.hresult !== null) {
    h[WireHeader.ErrorCode] = formatHresult(error.hresult);
    h[WireHeader.ErrorContext] = formatErrorContext(error.context);
  }
  return { status: error.status, headers: h };
}

