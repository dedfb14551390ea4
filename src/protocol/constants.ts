/**
 * Wire constants of the BITS Upload Protocol (spec §2, §5).
 *
 * @example
 * ```ts
 * import { BITS_PROTOCOL_GUID } from './constants.js';
 * headers['bits-protocol'] = BITS_PROTOCOL_GUID;
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

/** Lowercase header names used on the wire. */
export const Header = {
  PacketType: 'bits-packet-type',
  SessionId: 'bits-session-id',
  SupportedProtocols: 'bits-supported-protocols',
  Protocol: 'bits-protocol',
  HostId: 'bits-host-id',
  HostIdFallbackTimeout: 'bits-host-id-fallback-timeout',
  ReceivedContentRange: 'bits-received-content-range',
  ReplyUrl: 'bits-reply-url',
  ErrorCode: 'bits-error-code',
  ErrorContext: 'bits-error-context',
  MethodOverride: 'x-http-method-override',
} as const;

/** Header names in the casing written on Acks (Windows forms). */
export const WireHeader = {
  PacketType: 'BITS-Packet-Type',
  SessionId: 'BITS-Session-Id',
  Protocol: 'BITS-Protocol',
  HostId: 'BITS-Host-Id',
  HostIdFallbackTimeout: 'BITS-Host-Id-Fallback-Timeout',
  ReceivedContentRange: 'BITS-Received-Content-Range',
  ReplyUrl: 'BITS-Reply-URL',
  ErrorCode: 'BITS-Error-Code',
  ErrorContext: 'BITS-Error-Context',
} as const;

/** Largest value of a single header accepted on a BITS request (spec §2, 4 KiB). */
export const MAX_BITS_HEADER_VALUE = 4096;

/** Largest session id accepted from a client (spec §2: ≤ 100 characters). */
export const MAX_SESSION_ID_LENGTH = 100;
