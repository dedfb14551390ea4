// Peers that behave like the third-party servers our client met in interop testing, each written from
// the behaviour observed (not from their code): what they accept, what they refuse, how they answer.
import { randomUUID } from 'node:crypto';
import { startFakeServer } from './fake-http-server.js';
import type { FakeServer } from './fake-http-server.js';


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
