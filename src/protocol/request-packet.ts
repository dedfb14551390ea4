import { BITS_METHOD, PacketType, WireHeader } from './constants.js';
import { formatContentRange } from './content-range.js';
import type { Packet } from './packet.js';

/** A request packet ready to be sent: method and headers (a Fragment's body goes beside them). */
export interface FormattedPacket {
  readonly method: typeof BITS_METHOD;
  /** Header names in Windows casing. */
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Builds the request of a packet, the inverse of `parsePacket`: what `parsePacket` reads back from
 * these headers (lowercased) is the packet given. Headers come in Windows casing and order (packet
 * type first); optional fields left `undefined` are not sent. A Create-Session offers the packet's
 * `protocol` as its only supported protocol. Every body-less packet says `Content-Length: 0`; a
 * Fragment's Content-Length is its range's length.
 *
 * @example
 * ```ts
 * formatPacket({ type: 'Close-Session', sessionId: '{A}', contentName: 'a.bin' });
 * // { method: 'BITS_POST', headers: { 'BITS-Packet-Type': 'Close-Session', 'Content-Length': '0',
 * //   'BITS-Session-Id': '{A}', 'Content-Name': 'a.bin' } }
 * formatPacket({ type: 'Fragment', sessionId: '{A}', contentName: undefined, range: fragmentRange(0, 100, 300) })
 *   .headers['Content-Range']; // 'bytes 0-99/300'
 * ```
 */
export function formatPacket(packet: Packet): FormattedPacket {
  const length = packet.type === PacketType.Fragment ? packet.range.length : 0;
  const h: Record<string, string> = { [WireHeader.PacketType]: packet.type, [WireHeader.ContentLength]: String(length) };
  const set = (name: string, value: string | undefined): void => {
    if (value !== undefined) h[name] = value;
  };
  // Each field goes under its header whatever the packet; the order is Windows'.
  if ('sessionId' in packet) set(WireHeader.SessionId, packet.sessionId);
  if (packet.type === PacketType.CreateSession) set(WireHeader.SupportedProtocols, packet.protocol);
  if ('contentName' in packet) set(WireHeader.ContentName, packet.contentName);
  if (packet.type === PacketType.Fragment) set(WireHeader.ContentRange, formatContentRange(packet.range.first, packet.range.length, packet.range.total));
  return { method: BITS_METHOD, headers: h };
}
