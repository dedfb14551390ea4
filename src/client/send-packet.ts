import { readAck } from '../protocol/ack-info.js';
import type { AckInfo } from '../protocol/ack-info.js';
import type { Packet } from '../protocol/packet.js';
import { formatPacket } from '../protocol/request-packet.js';
import type { BodySource, Transport } from './transport.js';

/**
 * Sends a BITS packet, built by `formatPacket` (the inverse of the server's `parsePacket`), and reads
 * its Ack with `readAck`.
 *
 * @example
 * ```ts
 * const ack = await sendPacket(transport, { type: 'Ping', sessionId: undefined }, url, { signal });
 * ```
 */
export async function sendPacket(
  transport: Transport,
  packet: Packet,
  url: URL,
  o: { body?: BodySource | undefined; signal?: AbortSignal | undefined; onActivity?: (() => void) | undefined } = {},
): Promise<AckInfo> {
  const { method, headers } = formatPacket(packet);
  const res = await transport.sendForAck({ method, url, headers, ...(o.body !== undefined ? { body: o.body } : {}), signal: o.signal, onActivity: o.onActivity, label: packet.type });
  return readAck(res.status, res.headers);
}
