import { Header } from './constants.js';
import { parseDecimal } from './decimal.js';
import { parseHresult } from './hresult.js';
import type { HeaderMap } from './packet.js';

/** What a client reads off an Ack (spec §4), in the dialects servers in the wild speak (D1, D20, D22). */
export interface AckInfo {
  /** HTTP status of the Ack. */
  readonly status: number;
  /** Whether the status means success: 200, or 201 as some servers answer Create-Session (D22). */
  readonly ok: boolean;
  /** `BITS-Error-Code` or the spec's `BITS-Error` (D1); only read on non-success Acks; `0` counts as absent. */
  readonly hresult: number | undefined;
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
  /** `Retry-After` of a failure Ack in milliseconds (at most an hour); `undefined` when absent or on success. */
  readonly retryAfterMs: number | undefined;
}

/** The longest pause a server may ask for with `Retry-After`: an hour. */
const MAX_RETRY_AFTER_MS = 3_600_000;

function nonEmpty(value: string | undefined): string | undefined {
  const v = value?.trim();
  return v === undefined || v === '' ? undefined : v;
}

function decimal(value: string | undefined): number | undefined {
  return parseDecimal(nonEmpty(value));
}

/**
 * `Retry-After` in milliseconds (delay-seconds or an HTTP date), capped at an hour; `undefined` when
 * absent or unreadable.
 *
 * @param now the clock an HTTP date is measured against
 * @example
 * ```ts
 * parseRetryAfter('60'); // 60000
 * parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT', Date.parse('Wed, 21 Oct 2015 07:27:00 GMT')); // 60000
 * ```
 */
function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  const v = nonEmpty(value);
  if (v === undefined) return undefined;
  const ms = /^\d{1,7}$/.test(v) ? Number(v) * 1000 : Date.parse(v) - now;
  return Number.isFinite(ms) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms)) : undefined;
}

/**
 * Reads the fields of an Ack a client acts on. Liberal (spec §14 D1, D20, D22): the error code may
 * come as `BITS-Error-Code` or `BITS-Error`, error headers on a success Ack are ignored (some servers
 * send `BITS-Error-Code: 1` on 200), session ids are kept verbatim, and the next offset may come as
 * the misspelt `BITS-Recieved-Content-Range` (gobits, bitsrv).
 *
 * @param status the HTTP status of the response
 * @param headers response headers, lowercase names
 * @param now the clock a `Retry-After` date is measured against
 * @example
 * ```ts
 * readAck(416, { 'bits-packet-type': 'Ack', 'bits-received-content-range': '100' }).receivedContentRange; // 100
 * readAck(500, { 'bits-error': '0x8020001f' }).hresult; // 0x8020001F
 * readAck(503, { 'retry-after': '2' }).retryAfterMs; // 2000
 * ```
 */
export function readAck(status: number, headers: HeaderMap, now = Date.now()): AckInfo {
  const ok = status === 200 || status === 201;
  let hresult: number | undefined;
  let errorContext: number | undefined;
  if (!ok) {
    const code = parseHresult(nonEmpty(headers[Header.ErrorCode]) ?? nonEmpty(headers[Header.Error]));
    hresult = code === 0 ? undefined : code;
    errorContext = parseHresult(nonEmpty(headers[Header.ErrorContext]));
  }
  const hostId = nonEmpty(headers[Header.HostId]);
  return {
    status,
    ok,
    hresult,
    errorContext,
    sessionId: nonEmpty(headers[Header.SessionId]),
    protocol: nonEmpty(headers[Header.Protocol]),
    receivedContentRange: decimal(headers[Header.ReceivedContentRange] ?? headers[Header.ReceivedContentRangeMisspelt]),
    hostId,
    hostIdFallbackTimeout: hostId === undefined ? undefined : decimal(headers[Header.HostIdFallbackTimeout]),
    replyUrl: nonEmpty(headers[Header.ReplyUrl]),
    retryAfterMs: ok ? undefined : parseRetryAfter(headers[Header.RetryAfter], now),
  };
}
