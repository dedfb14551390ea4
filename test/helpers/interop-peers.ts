// Peers that behave like the third-party servers our client met in interop testing, each written from
// the behaviour observed (not from their code): what they accept, what they refuse, how they answer.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
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

/** What {@link startMisspeltRangePeer} holds. */
export interface MisspeltPeerState {
  /** Committed uploads by path. */
  readonly committed: Map<string, Buffer>;
  /** `<status> <Content-Range>` of every Fragment answered. */
  readonly fragments: string[];
}

/**
 * A BITS peer in the gobits/bitsrv dialect: a Fragment that is already on disk (a retransmission) or
 * that would leave a gap is answered 416 with the misspelt `BITS-Recieved-Content-Range: <size>` and
 * `BITS-Error-Code: 0`; a good one 200 with `BITS-Received-Content-Range`. The Fragment numbered
 * `loseAckOf` (0-based) is written, then its connection dropped before the Ack, so the client resends it.
 */
export async function startMisspeltRangePeer(loseAckOf: number): Promise<FakeServer & { state: MisspeltPeerState }> {
  const state: MisspeltPeerState = { committed: new Map(), fragments: [] };
  const sessions = new Map<string, { path: string; data: Buffer }>();
  let fragment = 0;
  const server = await startFakeServer((req): FakeReply => {
    const type = (req.headers['bits-packet-type'] ?? '').toLowerCase();
    const sid = req.headers['bits-session-id'] ?? '';
    const s = sessions.get(sid);
    const error = (status: number, extra: Record<string, string | number> = {}): FakeReply => ({
      status,
      headers: { ...ACK, 'BITS-Session-Id': sid, 'BITS-Error-Code': '0', 'BITS-Error-Context': '0x5', ...extra },
    });
    switch (type) {
      case 'ping':
        return { status: 200, headers: ACK };
      case 'create-session': {
        const id = `{${randomUUID().toUpperCase()}}`;
        sessions.set(id, { path: req.path, data: Buffer.alloc(0) });
        return { status: 200, headers: { ...ACK, 'BITS-Protocol': '{7df0354d-249b-430f-820d-3d2a9bef4931}', 'BITS-Session-Id': id } };
      }
      case 'fragment': {
        if (!s) return error(400);
        const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(req.headers['content-range'] ?? '');
        if (!m) return error(400);
        const [first, last, size] = [Number(m[1]), Number(m[2]), s.data.length];
        if (last < size || first > size) {
          state.fragments.push(`416 ${req.headers['content-range']}`);
          return error(416, { 'BITS-Recieved-Content-Range': size });
        }
        s.data = Buffer.concat([s.data, req.body.subarray(size - first)]);
        state.fragments.push(`200 ${req.headers['content-range']}`);
        if (fragment++ === loseAckOf) return 'close';
        return { status: 200, headers: { ...ACK, 'BITS-Session-Id': sid, 'BITS-Received-Content-Range': s.data.length } };
      }
      case 'close-session':
        if (!s) return error(400);
        sessions.delete(sid);
        state.committed.set(s.path, s.data);
        return { status: 200, headers: { ...ACK, 'BITS-Session-Id': sid } };
    }
    return error(400);
  });
  return Object.assign(server, { state });
}

/** A running {@link startSlowLink}. */
export interface SlowLink {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A slow uplink in front of `port`: what the client sends is taken off its socket at about
 * `bytesPerSecond` (in 20 ms slices, the rest left unread so the client's writes back up as over a
 * slow line), answers come back at full speed. The kernel's socket buffers still take a few MiB at
 * once on loopback, which the client cannot tell from bytes delivered.
 */
export async function startSlowLink(port: number, bytesPerSecond: number): Promise<SlowLink> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): net.Socket => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    return s;
  };
  const server = net.createServer((client) => {
    track(client);
    const upstream = track(net.connect(port, '127.0.0.1'));
    let budget = 0;
    client.pause();
    const slice = setInterval(() => {
      budget = bytesPerSecond / 50;
      client.resume();
    }, 20);
    client.on('data', (chunk: Buffer) => {
      const take = Math.min(budget, chunk.length);
      budget -= take;
      if (take > 0) upstream.write(chunk.subarray(0, take));
      if (take < chunk.length) {
        client.pause();
        client.unshift(chunk.subarray(take));
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('close', () => {
      clearInterval(slice);
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A download server that ignores `Range` (every GET is a 200 with the whole body, as some CDNs and
 * simple file servers answer) and sends bodies slowly, `piece` bytes every `everyMs`; the first GET
 * is cut after `cutFirstGetAfter` body bytes. HEAD and GET carry `Content-Length`, `ETag` and
 * `Last-Modified`.
 */
export async function startRangeIgnoringServer(
  body: Buffer,
  o: { cutFirstGetAfter: number; piece: number; everyMs: number },
): Promise<{ readonly port: number; readonly gets: number; close(): Promise<void> }> {
  const validators = { 'Content-Length': body.length, ETag: '"v1"', 'Last-Modified': new Date(Date.now() - 60_000).toUTCString() };
  const state = { gets: 0 };
  const server = http.createServer((req, res) => {
    res.writeHead(200, validators);
    if (req.method !== 'GET') return res.end();
    const cut = state.gets++ === 0 ? o.cutFirstGetAfter : body.length;
    let at = 0;
    const timer = setInterval(() => {
      const end = Math.min(at + o.piece, cut);
      res.write(body.subarray(at, end));
      at = end;
      if (at >= body.length) {
        clearInterval(timer);
        res.end();
      } else if (at >= cut) {
        clearInterval(timer);
        setTimeout(() => res.destroy(), 20);
      }
    }, o.everyMs);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(state, {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
