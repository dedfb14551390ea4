// Peers that behave like the third-party servers our client met in interop testing, each written from
// the behaviour observed (not from their code): what they accept, what they refuse, how they answer.
import { randomUUID } from 'node:crypto';
import { startFakeServer } from './fake-http-server.js';
import type { FakeServer } from './fake-http-server.js';
import { startFakeBitsServer } from './fake-bits-server.js';
import type { FakeBitsState } from './fake-bits-server.js';

const ACK = { 'BITS-Packet-Type': 'Ack' };
const INVALID_ARG = { ...ACK, 'BITS-Error-Code': '0x80070057', 'BITS-Error-Context': '0x5' };

/** A peer that reads every request (or TLS handshake) and never answers: a hung server. */
export function startSilentPeer(): Promise<FakeServer> {
  return startFakeServer(() => 'hang');
}

/**
 * A BITS peer whose Acks carry neither `Content-Length` nor `Transfer-Encoding` and which keeps the
 * connection open: by HTTP/1.1 the (empty) body only ends when the connection closes, which never
 * happens, so a client reading the Ack's body waits forever.
 */
export function startUnframedAckPeer(): Promise<FakeServer> {
  return startFakeServer((req) => {
    const sid = req.headers['bits-session-id'] ?? `{${randomUUID().toUpperCase()}}`;
    const head = ['HTTP/1.1 200 OK', 'BITS-Packet-Type: Ack', `BITS-Session-Id: ${sid}`, 'Connection: keep-alive', '', ''];
    return { raw: Buffer.from(head.join('\r\n'), 'latin1'), keepOpen: true };
  });
}

/**
 * A BITS peer that refuses the empty Fragment of a zero-length file (`Content-Range: bytes *\/0`) with
 * 400 + E_INVALIDARG, as every third-party server tried does (or worse, crashes); it takes
 * Create-Session followed directly by Close-Session as an empty upload (spec D8).
 */
export async function startEmptyRangeRejectingPeer(): Promise<FakeServer & { state: FakeBitsState }> {
  return startFakeBitsServer({
    override: (req) => {
      const type = (req.headers['bits-packet-type'] ?? '').toLowerCase();
      const range = req.headers['content-range'] ?? '';
      return type === 'fragment' && /\/0$/.test(range) ? { status: 400, headers: { ...INVALID_ARG } } : undefined;
    },
  });
}
