import type net from 'node:net';

/** One HTTP response read off a socket (bodies framed by Content-Length). */
export interface HttpResponse {
  status: number;
  statusLine: string;
  /** Lowercase names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Every header line as sent, in order (lowercase names): shows repeats that `headers` joins. */
  rawHeaders: [string, string][];
  body: Buffer;
}

/** Options of {@link SocketReader.response}. */
export interface ResponseOptions {
  /** The request was HEAD: no body follows, whatever Content-Length says. */
  head?: boolean | undefined;
  /** Skip 1xx interim responses instead of returning them. */
  skipInterim?: boolean | undefined;
  /** Give up (reject) after this long; no limit by default. */
  timeoutMs?: number | undefined;
}

/** A parsed head. */
export interface ParsedHead {
  readonly startLine: string;
  /** Lowercase names; repeated headers joined with ", ". */
  readonly headers: Record<string, string>;
}

/**
 * Parses a head (start line + header lines) leniently, for peers that forward what they get.
 *
 * @example
 * ```ts
 * const { startLine, headers } = parseHead(await reader.readHead());
 * ```
 */
export function parseHead(head: Buffer): ParsedHead {
  const lines = head.toString('latin1').split('\r\n').filter((l) => l !== '');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  return { startLine: lines[0] ?? '', headers };
}

const EMPTY = Buffer.alloc(0);
/** Unread bytes above which the socket is paused until they are read (memory stays bounded). */
const PAUSE_ABOVE = 4 * 1024 * 1024;

/**
 * Reads what a peer sends on a socket, on demand: heads, exact byte counts, whole HTTP responses,
 * or the end of the stream. No HTTP library in between, so tests and benchmarks see exactly the
 * bytes on the wire.
 *
 * @example
 * ```ts
 * const reader = new SocketReader(socket);
 * socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
 * const res = await reader.response({ timeoutMs: 5000 });
 * ```
 */
export class SocketReader {
  private chunks: Buffer[] = [];
  private length = 0;
  private ended = false;
  private failure: Error | undefined;
  private waiters: (() => void)[] = [];

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.length += d.length;
      if (this.length > PAUSE_ABOVE) socket.pause();
      this.wake();
    });
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', (err) => {
      this.failure = err;
      end();
    });
  }

  /** Whether the peer closed (or the socket failed): no more bytes will come. */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Bytes received and not read yet. */
  get pending(): Buffer {
    return this.flat();
  }

  /** How many bytes are received and not read yet. */
  get pendingLength(): number {
    return this.length;
  }

  /** Exactly `n` bytes; rejects when the peer closes first. */
  async bytes(n: number, timeoutMs?: number): Promise<Buffer> {
    const deadline = deadlineOf(timeoutMs);
    while (this.length < n) {
      if (this.ended) throw this.failure ?? new Error(`peer closed the connection (${this.length} unread bytes)`);
      await this.wait(deadline);
    }
    return this.take(n);
  }

  /** The next head (through the blank line), or `undefined` at the end of the stream. */
  async readHead(timeoutMs?: number): Promise<Buffer | undefined> {
    const deadline = deadlineOf(timeoutMs);
    for (;;) {
      const i = this.flat().indexOf('\r\n\r\n');
      if (i !== -1) return this.take(i + 4);
      if (this.ended) return undefined;
      await this.wait(deadline);
    }
  }

  /** Up to `max` bytes (waits for at least one); empty at the end of the stream. */
  async readSome(max: number): Promise<Buffer> {
    while (this.length === 0) {
      if (this.ended) return EMPTY;
      await this.wait(Infinity);
    }
    const first = this.chunks[0]!;
    if (first.length <= max) {
      this.chunks.shift();
      this.length -= first.length;
      this.resumeIfDrained();
      return first;
    }
    return this.take(max);
  }

  /** Exactly `n` bytes, chunk by chunk, to `onChunk`; false if the stream ended first. */
  async readExactly(n: number, onChunk: (chunk: Buffer) => void | Promise<void>, chunkSize = 64 * 1024): Promise<boolean> {
    let left = n;
    while (left > 0) {
      const chunk = await this.readSome(Math.min(left, chunkSize));
      if (chunk.length === 0) return false;
      left -= chunk.length;
      await onChunk(chunk);
    }
    return true;
  }

  /** Reads one response; malformed heads and a close inside a response are errors. */
  async response(options: ResponseOptions = {}): Promise<HttpResponse> {
    const deadline = deadlineOf(options.timeoutMs);
    for (;;) {
      let end: number;
      while ((end = this.flat().indexOf('\r\n\r\n')) === -1) {
        if (this.ended) throw new Error(`connection closed before a response (got ${this.length} bytes)`);
        await this.wait(deadline);
      }
      const [statusLine = '', ...lines] = this.flat().toString('latin1', 0, end).split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine);
      if (!m) throw new Error(`malformed status line: ${JSON.stringify(statusLine)}`);
      const headers: Record<string, string> = {};
      const rawHeaders: [string, string][] = [];
      for (const line of lines) {
        const i = line.indexOf(':');
        if (i <= 0) throw new Error(`malformed header line: ${JSON.stringify(line)}`);
        const k = line.slice(0, i).toLowerCase();
        const v = line.slice(i + 1).trim();
        rawHeaders.push([k, v]);
        headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
      }
      const status = Number(m[1]);
      const interim = status >= 100 && status < 200;
      const length = options.head || interim || status === 204 || status === 304 ? 0 : Number(headers['content-length'] ?? 0);
      while (this.length < end + 4 + length) {
        if (this.ended) throw new Error('connection closed inside a response body');
        await this.wait(deadline);
      }
      this.take(end + 4);
      const body = Buffer.from(this.take(length));
      if (interim && options.skipInterim) continue;
      return { status, statusLine, headers, rawHeaders, body };
    }
  }

  /** Resolves true when the peer closes within the time, false otherwise. */
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

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits for more bytes or the end; rejects at `deadline` (ms since the epoch). */
  private wait(deadline: number): Promise<void> {
    this.socket.resume();
    return new Promise((resolve, reject) => {
      if (deadline === Infinity) {
        this.waiters.push(resolve);
        return;
      }
      const left = deadline - Date.now();
      if (left <= 0) return reject(new Error('timed out waiting for the server'));
      const t = setTimeout(() => reject(new Error('timed out waiting for the server')), left);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private flat(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.length)];
    return this.chunks[0] ?? EMPTY;
  }

  private take(n: number): Buffer {
    const all = this.flat();
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    this.resumeIfDrained();
    return out;
  }

  private resumeIfDrained(): void {
    if (this.length < PAUSE_ABOVE / 4) this.socket.resume();
  }
}

const deadlineOf = (timeoutMs: number | undefined): number => (timeoutMs === undefined ? Infinity : Date.now() + timeoutMs);
