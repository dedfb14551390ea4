/**
 * Wire constants of the BITS Upload Protocol (spec §2, §5).
 *
 * @example
 * ```ts
 * import { BITS_PROTOCOL_GUID, Header, WireHeader } from './constants.js';
 * request.headers[Header.Protocol];           // reading: lowercase, as received
 * ack.headers[WireHeader.Protocol] = BITS_PROTOCOL_GUID; // writing: Windows casing
 * ```
 */

/** The only protocol GUID defined: "BITS 1.5 Upload Protocol" (lowercase, as Windows sends it). */
export const BITS_PROTOCOL_GUID = '{7df0354d-249b-430f-820d-3d2a9bef4931}';

/** The extension method every upload request uses. */
export const BITS_METHOD = 'BITS_POST';

/** Packet types, in the form Windows sends them. Input is compared case-insensitively (D2). */
export const PacketType = {
  Ping: 'Ping',
  CreateSession: 'Create-Session',
  Fragment: 'Fragment',
  CloseSession: 'Close-Session',
  CancelSession: 'Cancel-Session',
  Ack: 'Ack',
} as const;

/** A request packet type (every type but `Ack`). */
export type RequestPacketType = Exclude<(typeof PacketType)[keyof typeof PacketType], 'Ack'>;

/**
 * Every header name the protocol uses, in the casing Windows writes (and this project sends). The one
 * table of header names: {@link Header} is the same table lowercased for lookups.
 */
export const WireHeader = {
  PacketType: 'BITS-Packet-Type',
  SessionId: 'BITS-Session-Id',
  SupportedProtocols: 'BITS-Supported-Protocols',
  Protocol: 'BITS-Protocol',
  HostId: 'BITS-Host-Id',
  HostIdFallbackTimeout: 'BITS-Host-Id-Fallback-Timeout',
  ReceivedContentRange: 'BITS-Received-Content-Range',
  /** How gobits and bitsrv spell `BITS-Received-Content-Range` on their 416 Acks (read as the same header). */
  ReceivedContentRangeMisspelt: 'BITS-Recieved-Content-Range',
  ReplyUrl: 'BITS-Reply-URL',
  ErrorCode: 'BITS-Error-Code',
  /** The spec's name for `BITS-Error-Code` (D1): read, never written. */
  Error: 'BITS-Error',
  ErrorContext: 'BITS-Error-Context',
  ContentName: 'Content-Name',
  ContentRange: 'Content-Range',
  ContentLength: 'Content-Length',
  AcceptEncoding: 'Accept-Encoding',
  RetryAfter: 'Retry-After',
  MethodOverride: 'X-HTTP-Method-Override',
  // Server-application notification (spec §9).
  OriginalRequestUrl: 'BITS-Original-Request-URL',
  RequestDataFileName: 'BITS-Request-DataFile-Name',
  ResponseDataFileName: 'BITS-Response-DataFile-Name',
  StaticResponseUrl: 'BITS-Static-Response-URL',
  CopyFileToDestination: 'BITS-Copy-File-To-Destination',
} as const;

type Lowercased<T extends Record<string, string>> = { readonly [K in keyof T]: Lowercase<T[K]> };

function lowercased<T extends Record<string, string>>(table: T): Lowercased<T> {
  return Object.freeze(Object.fromEntries(Object.entries(table).map(([k, v]) => [k, v.toLowerCase()]))) as Lowercased<T>;
}

/** {@link WireHeader} lowercased: the keys of received headers (Node and the engine lowercase them). */
export const Header = lowercased(WireHeader);

/** Largest value of a single header accepted on a BITS request (spec §2, 4 KiB). */
export const MAX_BITS_HEADER_VALUE = 4096;

/** Largest session id accepted from a client (spec §2: ≤ 100 characters). */
export const MAX_SESSION_ID_LENGTH = 100;

/**
 * The longest URL BITS passes on: a static reply URL (`BITS-Static-Response-URL`, §15 case 57) and a
 * vdir's notification URL alike (spec §10: 2,200 characters).
 */
export const MAX_REPLY_URL = 2200;

/** `User-Agent` of every request this package makes: the client's, and the server's notifications. */
export const USER_AGENT = 'bits-upload';
