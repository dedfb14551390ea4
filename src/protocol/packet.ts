import { BITS_PROTOCOL_GUID, Header, MAX_BITS_HEADER_VALUE, MAX_SESSION_ID_LENGTH, PacketType } from './constants.js';
import type { RequestPacketType } from './constants.js';
import { parseContentRange } from './content-range.js';
import type { FragmentRange } from './content-range.js';
import { BitsError } from './errors.js';

/** Request headers keyed by lowercase name; repeated headers joined with `, `. */
export type HeaderMap = Readonly<Record<string, string | undefined>>;

/** A Ping packet (spec §3.1). The session id is optional and never checked (D12). */
export interface PingPacket {
  readonly type: 'Ping';
  readonly sessionId: string | undefined;
}
/** A Create-Session packet (spec §3.2). */
export interface CreateSessionPacket {
  readonly type: 'Create-Session';
  /** The protocol both sides speak, in its canonical lowercase form. */
  readonly protocol: string;
  readonly contentName: string | undefined;
}
/** A Fragment packet (spec §3.3). */
export interface FragmentPacket {
  readonly type: 'Fragment';
  readonly sessionId: string;
  readonly range: FragmentRange;
  readonly contentName: string | undefined;
}
/** A Close-Session packet (spec §3.4). */
export interface CloseSessionPacket {
  readonly type: 'Close-Session';
  readonly sessionId: string;
}
/** A Cancel-Session packet (spec §3.5). */
export interface CancelSessionPacket {
  readonly type: 'Cancel-Session';
  readonly sessionId: string;
}
/** Any request packet. */
export type Packet = PingPacket | CreateSessionPacket | FragmentPacket | CloseSessionPacket | CancelSessionPacket;

const TYPES: ReadonlyMap<string, RequestPacketType> = new Map(
  [PacketType.Ping, PacketType.CreateSession, PacketType.Fragment, PacketType.CloseSession, PacketType.CancelSession].map(
    (t) => [t.toLowerCase(), t] as const,
  ),
);

const SESSION_ID = /^[\x21-\x7e]+$/;

/**
 * Reads the packet type of a request, case-insensitively (D2).
 *
 * @throws {BitsError} `BITS_MISSING_PACKET_TYPE` or `BITS_UNKNOWN_PACKET_TYPE`.
 * @example
 * ```ts
 * packetTypeOf({ 'bits-packet-type': 'CREATE-SESSION' }); // 'Create-Session'
 * ```
 */
export function packetTypeOf(headers: HeaderMap): RequestPacketType {
  const raw = headers[Header.PacketType];
  if (raw === undefined || raw.trim() === '') {
    throw new BitsError('BITS_MISSING_PACKET_TYPE', 'BITS-Packet-Type is missing');
  }
  const type = TYPES.get(raw.trim().toLowerCase());
  if (!type) throw new BitsError('BITS_UNKNOWN_PACKET_TYPE', `unknown BITS-Packet-Type "${raw}"`);
  return type;
}

/**
 * Picks the first protocol of a `BITS-Supported-Protocols` list that this implementation speaks
 * (GUIDs compared case-insensitively, separated by spaces and/or commas; D2).
 *
 * @throws {BitsError} `BITS_NO_PROTOCOL` when the header is missing or names no known protocol.
 * @example
 * ```ts
 * chooseProtocol('{00000000-0000-0000-0000-000000000001}, {7DF0354D-249B-430F-820D-3D2A9BEF4931}');
 * // '{7df0354d-249b-430f-820d-3d2a9bef4931}'
 * ```
 */
export function chooseProtocol(value: string | undefined): string {
  if (value === undefined || value.trim() === '') {
    throw new BitsError('BITS_NO_PROTOCOL', 'BITS-Supported-Protocols is missing');
  }
  const offered = value.split(/[\s,]+/).filter(Boolean);
  if (offered.length > 100) throw new BitsError('BITS_NO_PROTOCOL', 'more than 100 protocols offered');
  for (const guid of offered) {
    if (guid.toLowerCase() === BITS_PROTOCOL_GUID) return BITS_PROTOCOL_GUID;
  }
  throw new BitsError('BITS_NO_PROTOCOL', `no supported protocol in "${value}"`);
}

function sessionIdOf(headers: HeaderMap, required: boolean): string | undefined {
  const raw = headers[Header.SessionId]?.trim();
  if (raw === undefined || raw === '') {
    if (required) throw new BitsError('BITS_MISSING_SESSION_ID', 'BITS-Session-Id is missing');
    return undefined;
  }
  if (raw.length > MAX_SESSION_ID_LENGTH || !SESSION_ID.test(raw)) {
    if (required) throw new BitsError('BITS_BAD_REQUEST', 'BITS-Session-Id is malformed');
    return undefined;
  }
  return raw;
}

/**
 * Whether the body is chunked, by D13's rules: `Transfer-Encoding` may only be a single `chunked`,
 * never next to a Content-Length (either would let a proxy in front frame the request otherwise).
 */
function isChunked(headers: HeaderMap, contentLength: number | undefined): boolean {
  const te = headers['transfer-encoding'];
  if (te === undefined) return false;
  if (te.toLowerCase() !== 'chunked') throw new BitsError('BITS_TRANSFER_ENCODING', `Transfer-Encoding "${te}" is not supported`);
  if (contentLength !== undefined) throw new BitsError('BITS_TRANSFER_ENCODING', 'Transfer-Encoding together with Content-Length');
  return true;
}

/**
 * Turns the headers of a `BITS_POST` into a typed packet, applying every generic check of spec §3.6
 * that needs no server state: packet type, header sizes, framing (D13), body-less packets, and the
 * per-packet mandatory headers. A Fragment's body is framed by a Content-Length equal to its range
 * length, or chunked (its decoded length is checked against the range as it streams).
 *
 * @param headers request headers, lowercase names
 * @param contentLength the request's Content-Length, or `undefined` when absent (or chunked)
 * @throws {BitsError} with the code of the first rule broken.
 * @example
 * ```ts
 * const p = parsePacket({ 'bits-packet-type': 'Fragment', 'bits-session-id': '{…}',
 *   'content-range': 'bytes 0-99/300' }, 100);
 * if (p.type === 'Fragment') p.range.total; // 300
 * parsePacket({ 'bits-packet-type': 'Fragment', 'bits-session-id': '{…}',
 *   'content-range': 'bytes 0-99/300', 'transfer-encoding': 'chunked' }, undefined); // a Fragment too
 * ```
 */
export function parsePacket(headers: HeaderMap, contentLength: number | undefined): Packet {
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && value.length > MAX_BITS_HEADER_VALUE) {
      throw new BitsError('BITS_HEADER_TOO_LARGE', `header ${name} is longer than ${MAX_BITS_HEADER_VALUE} bytes`);
    }
  }
  const chunked = isChunked(headers, contentLength);
  const type = packetTypeOf(headers);
  // D13: only a Fragment has a body, so only a Fragment may have a chunked one
  if (chunked && type !== PacketType.Fragment) throw new BitsError('BITS_TRANSFER_ENCODING', `${type} must not carry a chunked body`);
  if (type !== PacketType.Fragment && contentLength !== undefined && contentLength > 0) {
    throw new BitsError('BITS_UNEXPECTED_BODY', `${type} must not carry a body`);
  }
  switch (type) {
    case PacketType.Ping:
      return { type, sessionId: sessionIdOf(headers, false) };
    case PacketType.CreateSession:
      return {
        type,
        protocol: chooseProtocol(headers[Header.SupportedProtocols]),
        contentName: headers['content-name'],
      };
    case PacketType.CloseSession:
    case PacketType.CancelSession:
      return { type, sessionId: sessionIdOf(headers, true)! };
    case PacketType.Fragment: {
      const sessionId = sessionIdOf(headers, true)!;
      if (contentLength === undefined && !chunked) {
        throw new BitsError('BITS_MISSING_CONTENT_LENGTH', 'Fragment without Content-Length or Transfer-Encoding: chunked');
      }
      const encoding = headers['content-encoding']?.trim().toLowerCase();
      if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
        throw new BitsError('BITS_BAD_ENCODING', `Content-Encoding "${encoding}" is not supported`);
      }
      const range = parseContentRange(headers['content-range']);
      if (contentLength !== undefined && range.length !== contentLength) {
        throw new BitsError(
          'BITS_LENGTH_MISMATCH',
          `Content-Length ${contentLength} does not match Content-Range length ${range.length}`,
        );
      }
      return { type, sessionId, range, contentName: headers['content-name'] };
    }
  }
}
