import net from 'node:net';
import tls from 'node:tls';

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
  private buf = Buffer.alloc(0);
  private ended = false;
  private waiters: (() => void)[] = [];
  readonly socket: net.Socket;

  private constructor(socket: net.Socket) {
    // (TLS sockets are net.Sockets too.)
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => {
      this.ended = true;
      this.wake();
    });
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

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private wait(deadline: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const left = deadline - Date.now();
      if (left <= 0) return reject(new Error('timed out waiting for the server'));
      const t = setTimeout(() => reject(new Error('timed out waiting for the server')), left);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Reads one response. `head: true` for responses to HEAD (no body despite Content-Length). */
  async read(options: { timeoutMs?: number; head?: boolean } = {}): Promise<RawResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end !== -1) {
        const headText = this.buf.subarray(0, end).toString('latin1');
        const [statusLine, ...lines] = headText.split('\r\n');
        const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine!);
        if (!m) throw new Error(`malformed status line: ${JSON.stringify(statusLine)}`);
        const headers: Record<string, string> = {};
        for (const line of lines) {
          const i = line.indexOf(':');
          if (i <= 0) throw new Error(`malformed header line: ${JSON.stringify(line)}`);
          const k = line.slice(0, i).toLowerCase();
          const v = line.slice(i + 1).trim();
          headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
        }
        const status = Number(m[1]);
        const informational = status >= 100 && status < 200;
        const length = options.head || informational || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
        while (this.buf.length < end + 4 + length) {
          if (this.ended) throw new Error('connection closed inside a response body');
          await this.wait(deadline);
        }
        const body = this.buf.subarray(end + 4, end + 4 + length);
        this.buf = this.buf.subarray(end + 4 + length);
        return { status, statusLine: statusLine!, headers, body: Buffer.from(body) };
      }
      if (this.ended) throw new Error(`connection closed before a response (got ${this.buf.length} bytes)`);
      await this.wait(deadline);
    }
  }

  /** Resolves true when the server closes the connection within the time, false otherwise. */
  async closed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      try {
        await this.wait(deadline);
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Bytes received that were not part of a response read so far. */
  get pending(): Buffer {
    return this.buf;
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
