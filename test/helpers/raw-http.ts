import net from 'node:net';
import tls from 'node:tls';
import { SocketReader } from './socket-reader.js';

/** A parsed HTTP response read off a raw socket. */
export interface RawResponse {
  status: number;
  statusLine: string;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * A raw TCP connection for tests: write any bytes, read responses one by one (Content-Length
 * framing), see whether the server closed. No HTTP library in between.
 */
export class RawConnection {
  readonly socket: net.Socket;
  private readonly reader: SocketReader;

  private constructor(socket: net.Socket) {
    // (TLS sockets are net.Sockets too.)
    this.socket = socket;
    this.reader = new SocketReader(socket);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  /** A TLS connection; `options` carries the CA, client certificate, servername… */
  static connectTls(port: number, options: tls.ConnectionOptions): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Reads one response. `head: true` for responses to HEAD (no body despite Content-Length). */
  async read(options: { timeoutMs?: number; head?: boolean } = {}): Promise<RawResponse> {
    const { status, statusLine, headers, body } = await this.reader.response({ head: options.head, timeoutMs: options.timeoutMs ?? 10_000 });
    return { status, statusLine, headers, body };
  }

  /** Resolves true when the server closes the connection within the time, false otherwise. */
  closed(timeoutMs = 5000): Promise<boolean> {
    return this.reader.closed(timeoutMs);
  }

  /** Bytes received that were not part of a response read so far. */
  get pending(): Buffer {
    return this.reader.pending;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Options of one BITS request. */
export interface BitsRequest {
  type?: string;
  path: string;
  sessionId?: string;
  headers?: Record<string, string | number>;
  body?: Buffer | string;
  method?: string;
  /** Leave Content-Length out. */
  noContentLength?: boolean;
  version?: string;
  /** The Host header (default `localhost`). */
  host?: string;
}

/** Serialises a BITS_POST request (Windows-style headers). */
export function bitsRequestBytes(r: BitsRequest): Buffer {
  const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body);
  let head = `${r.method ?? 'BITS_POST'} ${r.path} ${r.version ?? 'HTTP/1.1'}\r\nHost: ${r.host ?? 'localhost'}\r\nUser-Agent: Microsoft BITS/7.8\r\nAccept: */*\r\n`;
  if (r.type !== undefined) head += `BITS-Packet-Type: ${r.type}\r\n`;
  if (r.sessionId !== undefined) head += `BITS-Session-Id: ${r.sessionId}\r\n`;
  for (const [k, v] of Object.entries(r.headers ?? {})) head += `${k}: ${v}\r\n`;
  if (!r.noContentLength) head += `Content-Length: ${body.length}\r\n`;
  head += '\r\n';
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

/**
 * Serialises a response (for fake servers and proxies).
 *
 * @example
 * ```ts
 * socket.write(responseBytes(200, { 'BITS-Packet-Type': 'Ack' }));
 * ```
 */
export function responseBytes(status: number, headers: Record<string, string | number>, body: Buffer = Buffer.alloc(0), head = false): Buffer {
  const all: Record<string, string | number> = { 'Content-Length': body.length, ...headers };
  const text = `HTTP/1.1 ${status} X\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  return head ? Buffer.from(text, 'latin1') : Buffer.concat([Buffer.from(text, 'latin1'), body]);
}
