import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { responseBytes } from './raw-http.js';
import { SocketReader, parseHead } from './socket-reader.js';

/** A request as the fake server saw it. */
export interface FakeRequest {
  readonly index: number;
  readonly method: string;
  readonly path: string;
  /** Lowercase names. */
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** The local port the request came in on (servers may listen on several). */
  readonly localPort: number;
}

/**
 * What the handler answers: a response (optionally cut after `cutAfter` body bytes), raw bytes
 * (then the connection closes, unless `keepOpen`: it stays open and silent, as a peer that never
 * ends an unframed body), or `hang` (never answer) / `close` (drop the connection).
 */
export type FakeReply =
  | { status: number; headers?: Record<string, string | number>; body?: Buffer | string; cutAfter?: number }
  | { raw: Buffer; keepOpen?: boolean }
  | 'hang'
  | 'close';

/** A running fake server. */
export interface FakeServer {
  readonly port: number;
  readonly requests: FakeRequest[];
  close(): Promise<void>;
}

/**
 * A tiny raw `node:net` HTTP/1.1 server for tests: keep-alive, Content-Length bodies, any method
 * token, and a handler that scripts every answer. Speaks just enough to play a BITS server of another
 * dialect, a reply host or a download server without range support.
 */
export async function startFakeServer(
  handler: (req: FakeRequest) => FakeReply | Promise<FakeReply>,
  options: { host?: string; port?: number } = {},
): Promise<FakeServer> {
  const requests: FakeRequest[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const reader = new SocketReader(socket);
    void (async () => {
      for (;;) {
        const head = await reader.readHead();
        if (!head) return socket.destroy();
        const { startLine, headers } = parseHead(head);
        const [method = '', target = '/'] = startLine.split(' ');
        const length = Number(headers['content-length'] ?? '0');
        const chunks: Buffer[] = [];
        if (!(await reader.readExactly(length, (c) => void chunks.push(Buffer.from(c))))) return socket.destroy();
        const req: FakeRequest = {
          index: requests.length,
          method,
          path: target,
          headers,
          body: Buffer.concat(chunks),
          localPort: socket.localPort ?? 0,
        };
        requests.push(req);
        const reply = await handler(req);
        if (reply === 'close') return socket.destroy();
        if (reply === 'hang') return;
        if ('raw' in reply) {
          if (reply.keepOpen) socket.write(reply.raw);
          else socket.end(reply.raw);
          return;
        }
        const body = typeof reply.body === 'string' ? Buffer.from(reply.body) : (reply.body ?? Buffer.alloc(0));
        const bytes = responseBytes(reply.status, reply.headers ?? {}, body, method === 'HEAD');
        if (reply.cutAfter !== undefined && method !== 'HEAD') {
          socket.write(bytes.subarray(0, bytes.length - body.length + reply.cutAfter));
          setTimeout(() => socket.destroy(), 20);
          return;
        }
        socket.write(bytes);
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
