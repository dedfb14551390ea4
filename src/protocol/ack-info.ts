import { Header } from './constants.js';
import { parseHresult } from './hresult.js';
import type { HeaderMap } from './packet.js';

/** What a client reads off an Ack (spec §4), in the dialects servers in the wild speak (D1, D20, D22). */
export interface AckInfo {
  /** HTTP status of the Ack. */
  readonly status: number;
  /** Whether the status means success: 200, or 201 as some servers answer Create-Session (D22). */
  readonly ok: boolean;
  /** `BITS-Error-Code` or the spec's `BITS-Error` (D1); only read on non-success Acks; `0` counts as absent. */
  readonly errorCode: number | undefined;
  /** `BITS-Error-Context` (0x5 remote file, 0x7 remote application), when present. */
  readonly errorContext: number | undefined;
  /** `BITS-Session-Id`, an opaque string (D20); Acks for Fragment/Close may omit it. */
  readonly sessionId: string | undefined;
  /** `BITS-Protocol` of a Create-Session Ack. */
  readonly protocol: string | undefined;
  /** `BITS-Received-Content-Range`: the offset of the next byte the server expects. */
  readonly receivedContentRange: number | undefined;
  /** `BITS-Host-Id` of a Create-Session Ack. */
  readonly hostId: string | undefined;
  /** `BITS-Host-Id-Fallback-Timeout` in seconds; `undefined` when absent (the client never falls back). */
  readonly hostIdFallbackTimeout: number | undefined;
  /** `BITS-Reply-URL` of the Ack that completes an upload-reply upload (non-empty). */
  readonly replyUrl: string | undefined;
}

const DECIMAL = /^\d{1,16}$/;

/** How gobits and bitsrv spell `BITS-Received-Content-Range` on their 416 Acks (read as the same header). */
const RECEIVED_MISSPELT = 'bits-recieved-content-range';

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function decimal(value: string | undefined): number | undefined {
  const v = nonEmpty(value);
  if (v === undefined || !DECIMAL.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Reads the fields of an Ack a client acts on. Liberal (spec §14 D1, D20, D22): the error code may
 * come as `BITS-Error-Code` or `BITS-Error`, error headers on a success Ack are ignored (some servers
 * send `BITS-Error-Code: 1` on 200), session ids are kept verbatim, and the next offset may come as
 * the misspelt `BITS-Recieved-Content-Range` (gobits, bitsrv).
 *
 * @param status the HTTP status of the response
 * @param headers response headers, lowercase names
 * @example
 * ```ts
 * readAck(416, { 'bits-packet-type': 'Ack', 'bits-received-content-range': '100' }).receivedContentRange; // 100
 * readAck(500, { 'bits-error': '0x8020001f' }).errorCode; // 0x8020001F
 * readAck(416, { 'bits-recieved-content-range': '100' }).receivedContentRange; // 100
 * ```
 */
export function readAck(status: number, headers: HeaderMap): AckInfo {
  const ok = status === 200 || status === 201;
  let errorCode: number | undefined;
  let errorContext: number | undefined;
  if (!ok) {
    const code = parseHresult(nonEmpty(headers[Header.ErrorCode]) ?? nonEmpty(headers['bits-error']));
    errorCode = code === 0 ? undefined : code;
    errorContext = parseHresult(nonEmpty(headers[Header.ErrorContext]));
  }
  const hostId = nonEmpty(headers[Header.HostId]);
  return {
    status,
    ok,
    errorCode,
    errorContext,
    sessionId: nonEmpty(headers[Header.SessionId]),
    protocol: nonEmpty(headers[Header.Protocol]),
    receivedContentRange: decimal(headers[Header.ReceivedContentRange] ?? headers[RECEIVED_MISSPELT]),
    hostId,
    hostIdFallbackTimeout: hostId === undefined ? undefined : decimal(headers[Header.HostIdFallbackTimeout]),
    replyUrl: nonEmpty(headers[Header.ReplyUrl]),
  };
}
