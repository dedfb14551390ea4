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
  /** Informational; Windows sends it on Close-Session too (spec §2.1). */
  readonly contentName: string | undefined;
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
 * Takes SP and HTAB, the only optional whitespace of HTTP, off both ends of a field value. Not
 * `trim()`: that also strips U+00A0 (byte 0xA0, obs-text, decoded as latin1) and other Unicode
 * spaces, which are part of the value, so ` \xa0{id}` would name the session `{id}`.
 */
function trimOws(value: string): string {
  return value.replace(/^[ \t]+|[ \t]+$/g, '');
}

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
  const value = raw === undefined ? '' : trimOws(raw);
  if (value === '') throw new BitsError('BITS_MISSING_PACKET_TYPE', 'BITS-Packet-Type is missing');
  const type = TYPES.get(value.toLowerCase());
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
  if (value === undefined || trimOws(value) === '') {
    throw new BitsError('BITS_NO_PROTOCOL', 'BITS-Supported-Protocols is missing');
  }
  // (separators are SP, HTAB and commas: a GUID with U+00A0 beside it is not a GUID we speak)
  const offered = value.split(/[ \t,]+/).filter(Boolean);
  if (offered.length > 100) throw new BitsError('BITS_NO_PROTOCOL', 'more than 100 protocols offered');
  for (const guid of offered) {
    if (guid.toLowerCase() === BITS_PROTOCOL_GUID) return BITS_PROTOCOL_GUID;
  }
  throw new BitsError('BITS_NO_PROTOCOL', `no supported protocol in "${value}"`);
}

function sessionIdOf(headers: HeaderMap, required: boolean): string | undefined {
  const field = headers[Header.SessionId];
  const raw = field === undefined ? undefined : trimOws(field);
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
 * Checks the transport's framing against the packet rules of D13. Which Transfer-Encoding is a chunked
 * body is the transport's decision alone (`bodyFraming` in `http/`, which has already refused every
 * other coding and chunked next to a Content-Length): a second reading of the header here could
 * disagree with it, and a request framed one way but judged the other is how requests are smuggled.
 * So a Transfer-Encoding the transport did not decode as chunked is refused whatever it says.
 */
function checkFraming(headers: HeaderMap, contentLength: number | undefined, chunked: boolean): void {
  if (!chunked && headers['transfer-encoding'] !== undefined) {
    throw new BitsError('BITS_TRANSFER_ENCODING', `Transfer-Encoding "${headers['transfer-encoding']}" was not decoded as chunked`);
  }
  if (chunked && contentLength !== undefined) throw new BitsError('BITS_TRANSFER_ENCODING', 'Transfer-Encoding together with Content-Length');
}

/**
 * Turns the headers of a `BITS_POST` into a typed packet, applying every generic check of spec §3.6
 * that needs no server state: packet type, header sizes, framing (D13), body-less packets, and the
 * per-packet mandatory headers. A Fragment's body is framed by a Content-Length equal to its range
 * length, or chunked (its decoded length is checked against the range as it streams).
 *
 * @param headers request headers, lowercase names
 * @param contentLength the request's Content-Length, or `undefined` when absent (or chunked)
 * @param chunked whether the transport decoded the body as chunked (`HttpRequest.chunked`); a
 *   Transfer-Encoding header without it is refused
 * @throws {BitsError} with the code of the first rule broken.
 * @example
 * ```ts
 * const p = parsePacket({ 'bits-packet-type': 'Fragment', 'bits-session-id': '{…}',
 *   'content-range': 'bytes 0-99/300' }, 100);
 * if (p.type === 'Fragment') p.range.total; // 300
 * parsePacket({ 'bits-packet-type': 'Fragment', 'bits-session-id': '{…}',
 *   'content-range': 'bytes 0-99/300', 'transfer-encoding': 'chunked' }, undefined, true); // a Fragment too
 * ```
 */
export function parsePacket(headers: HeaderMap, contentLength: number | undefined, chunked = false): Packet {
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && value.length > MAX_BITS_HEADER_VALUE) {
      throw new BitsError('BITS_HEADER_TOO_LARGE', `header ${name} is longer than ${MAX_BITS_HEADER_VALUE} bytes`);
    }
  }
  checkFraming(headers, contentLength, chunked);
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
        contentName: headers[Header.ContentName],
      };
    case PacketType.CloseSession:
      return { type, sessionId: sessionIdOf(headers, true)!, contentName: headers[Header.ContentName] };
    case PacketType.CancelSession:
      return { type, sessionId: sessionIdOf(headers, true)! };
    case PacketType.Fragment: {
      const sessionId = sessionIdOf(headers, true)!;
      if (contentLength === undefined && !chunked) {
        throw new BitsError('BITS_MISSING_CONTENT_LENGTH', 'Fragment without Content-Length or Transfer-Encoding: chunked');
      }
      const encoding = headers['content-encoding'] === undefined ? undefined : trimOws(headers['content-encoding']).toLowerCase();
      if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
        throw new BitsError('BITS_BAD_ENCODING', `Content-Encoding "${encoding}" is not supported`);
      }
      const range = parseContentRange(headers[Header.ContentRange]);
      if (contentLength !== undefined && range.length !== contentLength) {
        throw new BitsError(
          'BITS_LENGTH_MISMATCH',
          `Content-Length ${contentLength} does not match Content-Range length ${range.length}`,
        );
      }
      return { type, sessionId, range, contentName: headers[Header.ContentName] };
    }
  }
}
