import type net from 'node:net';

/** Reads an HTTP/1.1 message stream off a socket: heads up to CRLFCRLF, then exact byte counts. */
export class StreamReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private waiter: (() => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      if (this.buf.length > 4 * 1024 * 1024) socket.pause();
      this.wake();
    });
    const end = (): void => {
      this.ended = true;
      this.wake();
    };
    socket.on('end', end);
    socket.on('close', end);
    socket.on('error', end);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  private wait(): Promise<void> {
    this.socket.resume();
    return new Promise((resolve) => {
      this.waiter = resolve;
    });
  }

  /** The next head (without the blank line), or `undefined` at the end of the stream. */
  async readHead(): Promise<Buffer | undefined> {
    for (;;) {
      const i = this.buf.indexOf('\r\n\r\n');
      if (i !== -1) {
        const head = this.buf.subarray(0, i + 4);
        this.buf = this.buf.subarray(i + 4);
        return head;
      }
      if (this.ended) return undefined;
      await this.wait();
    }
  }

  /** Up to `max` bytes (waits for at least one); empty at the end of the stream. */
  async readSome(max: number): Promise<Buffer> {
    while (this.buf.length === 0) {
      if (this.ended) return Buffer.alloc(0);
      await this.wait();
    }
    const n = Math.min(max, this.buf.length);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    if (this.buf.length < 1024 * 1024) this.socket.resume();
    return out;
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
}

/** A parsed head. */
export interface ParsedHead {
  readonly startLine: string;
  /** Lowercase names. */
  readonly headers: Record<string, string>;
}

/** Parses a head (start line + header lines). */
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

/** Serialises a response. */
export function responseBytes(status: number, headers: Record<string, string | number>, body: Buffer = Buffer.alloc(0), head = false): Buffer {
  const all: Record<string, string | number> = { 'Content-Length': body.length, ...headers };
  const text = `HTTP/1.1 ${status} X\r\n${Object.entries(all).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  return head ? Buffer.from(text, 'latin1') : Buffer.concat([Buffer.from(text, 'latin1'), body]);
}
