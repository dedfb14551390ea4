import type { Socket } from 'node:net';

/** One HTTP response read off a raw socket (bodies are Content-Length framed). */
export interface BenchResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Reads what a peer sends on a socket, on demand: whole HTTP responses or a fixed number of bytes.
 * No HTTP library in between, so nothing but the server under test is measured.
 *
 * @example
 * ```ts
 * const reader = new SocketReader(socket);
 * socket.write(request);
 * const res = await reader.response();
 * ```
 */
export class SocketReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private failure: Error | undefined;
  private waiter: (() => void) | undefined;

  constructor(socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
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
    socket.on('error', (err) => {
      this.failure = err;
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private more(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.ended) return Promise.reject(new Error(`peer closed the connection (${this.buf.length} unread bytes)`));
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Reads exactly `n` bytes. */
  async bytes(n: number): Promise<Buffer> {
    while (this.buf.length < n) await this.more();
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Reads one HTTP response (1xx interim responses are skipped). */
  async response(): Promise<BenchResponse> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end === -1) {
        await this.more();
        continue;
      }
      const [statusLine, ...lines] = this.buf.toString('latin1', 0, end).split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
      if (!m) throw new Error(`malformed status line ${JSON.stringify(statusLine)}`);
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const status = Number(m[1]);
      const length = status < 200 || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
      while (this.buf.length < end + 4 + length) await this.more();
      const body = Buffer.from(this.buf.subarray(end + 4, end + 4 + length));
      this.buf = this.buf.subarray(end + 4 + length);
      if (status >= 100 && status < 200) continue;
      return { status, headers, body };
    }
  }
}
