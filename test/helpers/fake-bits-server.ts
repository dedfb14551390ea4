import { randomUUID } from 'node:crypto';
import { startFakeServer } from './fake-http-server.js';
import type { FakeReply, FakeRequest, FakeServer } from './fake-http-server.js';

/** How the fake BITS server behaves. */
export interface FakeBitsOptions {
  /** Status of a successful Create-Session Ack (some servers send 201). */
  createStatus?: number;
  /** Session ids handed out (default: IIS-style GUIDs). */
  sessionId?: (n: number) => string;
  /** Leave `BITS-Session-Id` off Fragment/Close Acks (as IIS 6 did in the spec's captures). */
  omitSessionIdOnAcks?: boolean;
  /** Name of the error header (`BITS-Error` per [MC-BUP], `BITS-Error-Code` elsewhere). */
  errorHeader?: string;
  /** `BITS-Reply-URL` for a completed upload (gets the server's port); the reply bytes are served at `replyPath`. */
  replyUrl?: (port: number, sessionId: string) => string;
  /** Decoded path the reply is served at (GET/HEAD, single ranges). */
  replyPath?: (sessionId: string) => string;
  reply?: Buffer;
  /** Cut the first reply GET after this many body bytes. */
  cutFirstReplyGetAfter?: number;
  /** `BITS-Host-Id` and `BITS-Host-Id-Fallback-Timeout` for Create-Session Acks. */
  hostId?: string;
  hostIdFallbackTimeout?: number;
  /** Answer Ping with a success that carries `BITS-Error-Code: 1` (SafeBreach's server does). */
  oddPing?: boolean;
  /** Leave `BITS-Received-Content-Range` off successful Fragment Acks. */
  omitReceivedRange?: boolean;
  /** Required `Authorization` header value; a request without it gets 401. */
  authorization?: string;
  /** Answer every packet to `path` with this instead (scripted failures). */
  override?: (req: FakeRequest, state: FakeBitsState) => FakeReply | undefined;
}

/** What the fake BITS server holds. */
export interface FakeBitsState {
  sessions: Map<string, { path: string; data: Buffer[]; received: number; total: number | undefined }>;
  /** Committed uploads by path. */
  committed: Map<string, Buffer>;
  /** Every packet type or `GET path` in arrival order. */
  log: string[];
}

/**
 * A BITS server of another dialect, on a raw socket: Ping, Create-Session, Fragment, Close-Session,
 * Cancel-Session, plus a reply file served with GET/HEAD and single ranges. Enough to test what our
 * own server does not do (reply URLs, odd session ids, 201, `BITS-Error`, missing headers).
 */
export async function startFakeBitsServer(o: FakeBitsOptions = {}, listen: { host?: string; port?: number } = {}): Promise<FakeServer & { state: FakeBitsState }> {
  const state: FakeBitsState = { sessions: new Map(), committed: new Map(), log: [] };
  let created = 0;
  let replyGets = 0;
  const lastModified = new Date(Date.now() - 60_000).toUTCString();
  const errorHeader = o.errorHeader ?? 'BITS-Error-Code';
  let port = 0;
  const ack = (status: number, headers: Record<string, string | number> = {}): FakeReply => ({ status, headers: { 'BITS-Packet-Type': 'Ack', ...headers } });
  const err = (status: number, code: string, sessionId?: string): FakeReply =>
    ack(status, { [errorHeader]: code, 'BITS-Error-Context': '0x5', ...(sessionId ? { 'BITS-Session-Id': sessionId } : {}) });
  const server = await startFakeServer((req) => {
    if (o.authorization !== undefined && req.headers['authorization'] !== o.authorization) {
      state.log.push(`401 ${req.method}`);
      return { status: 401, headers: { 'WWW-Authenticate': 'Basic realm="bits"' } };
    }
    const path = decodeURIComponent(req.path.split('?')[0]!);
    if (req.method === 'GET' || req.method === 'HEAD') {
      state.log.push(`${req.method} ${path}`);
      const session = [...state.sessions.keys()].find((id) => o.replyPath?.(id) === path);
      if (!session || !o.reply) return { status: 404 };
      const body = o.reply;
      const base = { 'Last-Modified': lastModified, ETag: '"reply-1"', 'Accept-Ranges': 'bytes' };
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers['range'] ?? '');
      let reply: FakeReply;
      if (range && Number(range[1]) < body.length) {
        const first = Number(range[1]);
        const last = range[2] === '' ? body.length - 1 : Math.min(body.length - 1, Number(range[2]));
        reply = { status: 206, headers: { ...base, 'Content-Range': `bytes ${first}-${last}/${body.length}` }, body: body.subarray(first, last + 1) };
      } else {
        reply = { status: 200, headers: base, body };
      }
      if (req.method === 'GET' && replyGets++ === 0 && o.cutFirstReplyGetAfter !== undefined) reply.cutAfter = o.cutFirstReplyGetAfter;
      return reply;
    }
    if (req.method !== 'BITS_POST') return { status: 405 };
    const type = (req.headers['bits-packet-type'] ?? '').toLowerCase();
    state.log.push(type);
    const overridden = o.override?.(req, state);
    if (overridden) return overridden;
    const id = req.headers['bits-session-id'];
    const echo: Record<string, string> = o.omitSessionIdOnAcks || !id ? {} : { 'BITS-Session-Id': id };
    switch (type) {
      case 'ping':
        return o.oddPing ? ack(200, { 'BITS-Error-Code': '1', 'BITS-Error-Context': '' }) : ack(200);
      case 'create-session': {
        const sid = o.sessionId?.(created) ?? `{${randomUUID().toUpperCase()}}`;
        created++;
        state.sessions.set(sid, { path, data: [], received: 0, total: undefined });
        return ack(o.createStatus ?? 200, {
          'BITS-Protocol': '{7df0354d-249b-430f-820d-3d2a9bef4931}',
          'BITS-Session-Id': sid,
          'Accept-Encoding': 'identity',
          ...(o.hostId ? { 'BITS-Host-Id': o.hostId } : {}),
          ...(o.hostId && o.hostIdFallbackTimeout !== undefined ? { 'BITS-Host-Id-Fallback-Timeout': o.hostIdFallbackTimeout } : {}),
        });
      }
      case 'fragment': {
        const s = id ? state.sessions.get(id) : undefined;
        if (!s) return err(500, '0x8020001F', id);
        const m = /^bytes (\d+)-(\d+)\/(\d+)$|^bytes \*\/0$/.exec(req.headers['content-range'] ?? '');
        if (!m) return err(400, '0x80070057', id);
        const first = m[1] === undefined ? 0 : Number(m[1]);
        const total = m[3] === undefined ? 0 : Number(m[3]);
        s.total = total;
        if (first > s.received) return ack(416, { ...echo, 'BITS-Received-Content-Range': s.received });
        const tail = req.body.subarray(s.received - first);
        s.data.push(Buffer.from(tail));
        s.received += tail.length;
        const done = s.received === total;
        return ack(200, {
          ...echo,
          ...(o.omitReceivedRange ? {} : { 'BITS-Received-Content-Range': s.received }),
          ...(done && o.replyUrl ? { 'BITS-Reply-URL': o.replyUrl(port, id!) } : {}),
        });
      }
      case 'close-session': {
        const s = id ? state.sessions.get(id) : undefined;
        if (!s) return err(500, '0x8020001F', id);
        state.sessions.delete(id!);
        if (s.received === s.total || s.total === undefined) state.committed.set(s.path, Buffer.concat(s.data));
        return ack(200, echo);
      }
      case 'cancel-session': {
        if (!id || !state.sessions.delete(id)) return err(500, '0x8020001F', id);
        return ack(200, echo);
      }
    }
    return err(400, '0x80070057', id);
  }, listen);
  port = server.port;
  return Object.assign(server, { state });
}
