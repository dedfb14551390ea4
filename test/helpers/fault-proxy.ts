import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { responseBytes } from './raw-http.js';
import { SocketReader, parseHead } from './socket-reader.js';

/** A request passing through the proxy. */
export interface ProxiedRequest {
  /** 0-based over the proxy's lifetime. */
  readonly index: number;
  readonly method: string;
  readonly path: string;
  /** Lowercase names. */
  readonly headers: Record<string, string>;
  /** `BITS-Packet-Type`, when present. */
  readonly packetType: string | undefined;
  readonly contentLength: number;
  /** The fault applied, if any. */
  fault?: Fault['kind'];
}

/** What to do to one request. */
export type Fault =
  /** Forward the head and `afterBytes` of the body, then cut both connections. */
  | { kind: 'cut'; afterBytes: number }
  /** Wait before forwarding. */
  | { kind: 'delay'; ms: number }
  /** Answer on the server's behalf (the body is read and dropped; nothing reaches the server). */
  | { kind: 'respond'; status: number; headers?: Record<string, string | number> }
  /** Forward the whole request, let the server answer, drop the answer and the client connection. */
  | { kind: 'drop-response' }
  /** Forward the whole request, drop the answer, keep the client connection silent. */
  | { kind: 'hang-response' }
  /** Forward the request; pass the response head and `afterBytes` of its body, then cut. */
  | { kind: 'cut-response'; afterBytes: number };

/** A running proxy. */
export interface FaultProxy {
  readonly port: number;
  readonly requests: ProxiedRequest[];
  /** Decides the fault for each request (`undefined`: pass it through). */
  rule: ((req: ProxiedRequest) => Fault | undefined) | undefined;
  /** Limits client → server body bytes per second (`undefined`: no limit). */
  bytesPerSecond: number | undefined;
  /** Body bytes forwarded to the server so far. */
  readonly bytesUp: number;
  /** Requests with a given packet type (case-insensitive). */
  count(packetType: string): number;
  close(): Promise<void>;
}

/**
 * A fault-injecting HTTP/1.1-aware TCP proxy for tests: it frames requests and responses
 * (Content-Length), and per request can cut the connection mid-body, delay, answer for the server
 * (413/416/500/503, BG_E_SESSION_NOT_FOUND), drop or withhold the server's answer after the server
 * stored the bytes, cut a response mid-body, or throttle uploads.
 */
export async function startFaultProxy(
  target: { host?: string; port: number },
  options: { host?: string; port?: number; rule?: FaultProxy['rule']; bytesPerSecond?: number } = {},
): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): net.Socket => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    return s;
  };
  let bytesUp = 0;
  const proxy: FaultProxy = {
    port: 0,
    requests: [],
    rule: options.rule,
    bytesPerSecond: options.bytesPerSecond,
    get bytesUp() {
      return bytesUp;
    },
    count: (type) => proxy.requests.filter((r) => r.packetType?.toLowerCase() === type.toLowerCase()).length,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };

  async function connectUpstream(): Promise<{ socket: net.Socket; reader: SocketReader }> {
    const socket = track(net.connect(target.port, target.host ?? '127.0.0.1'));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return { socket, reader: new SocketReader(socket) };
  }

  async function serve(client: net.Socket): Promise<void> {
    const reader = new SocketReader(client);
    let upstream: { socket: net.Socket; reader: SocketReader } | undefined;
    const cutAll = (): void => {
      client.destroy();
      upstream?.socket.destroy();
    };
    for (;;) {
      const head = await reader.readHead();
      if (!head) return cutAll();
      const { startLine, headers } = parseHead(head);
      const [method = '', path = '/'] = startLine.split(' ');
      const contentLength = Number(headers['content-length'] ?? '0');
      const info: ProxiedRequest = {
        index: proxy.requests.length,
        method,
        path,
        headers,
        packetType: headers['bits-packet-type'],
        contentLength,
      };
      proxy.requests.push(info);
      const fault = proxy.rule?.(info);
      if (fault) info.fault = fault.kind;
      if (fault?.kind === 'delay') await sleep(fault.ms);
      if (fault?.kind === 'respond') {
        if (!(await reader.readExactly(contentLength, () => undefined))) return cutAll();
        const h: Record<string, string | number> = { 'BITS-Packet-Type': 'Ack', ...fault.headers };
        if (headers['bits-session-id'] && !('BITS-Session-Id' in h)) h['BITS-Session-Id'] = headers['bits-session-id'];
        client.write(responseBytes(fault.status, h));
        continue;
      }
      if (!upstream || upstream.socket.destroyed) {
        try {
          upstream = await connectUpstream();
        } catch {
          return cutAll();
        }
      }
      const up = upstream;
      up.socket.write(head);
      const limit = fault?.kind === 'cut' ? Math.min(fault.afterBytes, contentLength) : contentLength;
      const ok = await reader.readExactly(
        limit,
        async (chunk) => {
          bytesUp += chunk.length;
          up.socket.write(chunk);
          if (proxy.bytesPerSecond) await sleep((chunk.length / proxy.bytesPerSecond) * 1000);
        },
        proxy.bytesPerSecond ? Math.max(1024, Math.floor(proxy.bytesPerSecond / 20)) : 64 * 1024,
      );
      if (!ok || fault?.kind === 'cut') {
        // Let the server see what was sent before the connection goes.
        await sleep(20);
        return cutAll();
      }
      const resHead = await up.reader.readHead();
      if (!resHead) return cutAll();
      const res = parseHead(resHead);
      const resLength = method === 'HEAD' ? 0 : Number(res.headers['content-length'] ?? '0');
      if (fault?.kind === 'drop-response' || fault?.kind === 'hang-response') {
        await up.reader.readExactly(resLength, () => undefined);
        if (fault.kind === 'drop-response') return cutAll();
        up.socket.destroy();
        return; // the client connection stays open and silent
      }
      client.write(resHead);
      const passed = fault?.kind === 'cut-response' ? Math.min(fault.afterBytes, resLength) : resLength;
      if (!(await up.reader.readExactly(passed, (c) => void client.write(c)))) return cutAll();
      if (fault?.kind === 'cut-response') {
        // Deliver what was passed, then close: the client sees a body that ends early.
        upstream.socket.destroy();
        client.end();
        return;
      }
      if (/close/i.test(res.headers['connection'] ?? '')) return cutAll();
    }
  }

  const server = net.createServer((client) => {
    track(client);
    serve(client).catch(() => client.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
  });
  (proxy as { port: number }).port = (server.address() as AddressInfo).port;
  return proxy;
}
