// Peers that behave like the third-party servers our client met in interop testing, each written from
// the behaviour observed (not from their code): what they accept, what they refuse, how they answer.
import { randomUUID } from 'node:crypto';
import { startFakeServer } from './fake-http-server.js';
import type { FakeReply, FakeServer } from './fake-http-server.js';
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

/**
 * A download server that understands only closed ranges (`Range: bytes=a-b`, as Windows sends them):
 * an open range (`bytes=a-`) gets 400. HEAD and GET carry `Content-Length`, `ETag` and
 * `Last-Modified`; the first GET is cut after `cutFirstGetAfter` body bytes.
 */
export function startClosedRangeServer(body: Buffer, cutFirstGetAfter: number): Promise<FakeServer> {
  const validators = { ETag: '"v1"', 'Last-Modified': new Date(Date.now() - 60_000).toUTCString(), 'Accept-Ranges': 'bytes' };
  let gets = 0;
  return startFakeServer((req): FakeReply => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return { status: 405 };
    const range = req.headers['range'];
    if (range === undefined) {
      const cut = req.method === 'GET' && gets++ === 0 ? { cutAfter: cutFirstGetAfter } : {};
      return { status: 200, headers: validators, body, ...cut };
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(range);
    if (!m) return { status: 400, body: 'bad range' };
    const first = Number(m[1]);
    const last = Math.min(Number(m[2]), body.length - 1);
    if (first > last) return { status: 416, headers: { 'Content-Range': `bytes */${body.length}` } };
    return { status: 206, headers: { ...validators, 'Content-Range': `bytes ${first}-${last}/${body.length}` }, body: body.subarray(first, last + 1) };
  });
}
