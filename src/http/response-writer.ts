import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { HttpError } from './errors.js';
import type { IdleTimer } from './idle-timer.js';
import { statusText } from './status-text.js';
import type { ResponseHeaders } from './types.js';

/** The interim answer that tells a client waiting on `Expect: 100-continue` to send its body. */
export const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n');

let cachedDate = '';
let cachedDateAt = 0;

/**
 * The `Date` header value, formatted at most once a second (every answer carries one).
 *
 * @example
 * ```ts
 * httpDate(); // 'Wed, 02 Dec 2026 15:55:34 GMT'
 * ```
 */
function httpDate(): string {
  const now = Date.now();
  if (now - cachedDateAt >= 1000) {
    cachedDate = new Date(now).toUTCString();
    cachedDateAt = now - (now % 1000);
  }
  return cachedDate;
}

/** One `Name: value` line, refusing a name or value that would split the head. */
function headerLine(name: string, value: string): string {
  if (/[\r\n\0]/.test(name) || /[\r\n\0]/.test(value)) throw new HttpError('HTTP_BAD_RESPONSE_HEADER', `invalid response header ${name}`);
  return `${name}: ${value}\r\n`;
}

/**
 * The status line and headers of an answer, with `Date` and the `Connection` header its keep-alive
 * decision needs (`close`; `keep-alive` for an HTTP/1.0 client that stays). A name or value with
 * CR, LF or NUL is refused (it would split the answer).
 *
 * @example
 * ```ts
 * serializeHead(200, { 'Content-Length': '0' }, false);
 * // <'HTTP/1.1 200 OK\r\nDate: …\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'>
 * ```
 */
export function serializeHead(status: number, headers: ResponseHeaders, keepAlive: boolean, http10 = false): Buffer {
  let out = `HTTP/1.1 ${status} ${statusText(status)}\r\nDate: ${httpDate()}\r\n`;
  for (const [name, values] of Object.entries(headers)) {
    if (typeof values === 'string') out += headerLine(name, values);
    else for (const value of values) out += headerLine(name, value);
  }
  if (!keepAlive) out += 'Connection: close\r\n';
  else if (http10) out += 'Connection: keep-alive\r\n';
  out += '\r\n';
  return Buffer.from(out, 'latin1');
}

/** Resolves on the socket's 'drain', rejects if it closes first. */
function drained(socket: Socket): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new HttpError('HTTP_CONNECTION_CLOSED', 'connection closed during the response'));
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

/**
 * Writes a response body with backpressure; each chunk written refreshes `timer` (armed for the
 * write idle timeout by the caller), which is cleared at the end. Fails when the connection goes
 * away or the body is not exactly `expected` bytes long.
 *
 * @example
 * ```ts
 * timer.arm('write');
 * await writeBody(socket, createReadStream(file), size, timer);
 * ```
 */
export async function writeBody(socket: Socket, body: Readable, expected: number, timer: Pick<IdleTimer, 'refresh' | 'clear'>): Promise<void> {
  let sent = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (socket.destroyed) throw new HttpError('HTTP_CONNECTION_CLOSED', 'connection closed during the response');
      sent += chunk.length;
      if (sent > expected) throw new HttpError('HTTP_RESPONSE_LENGTH_MISMATCH', `response body longer than its Content-Length ${expected}`);
      timer.refresh();
      if (!socket.write(chunk)) await drained(socket);
    }
    if (sent !== expected) throw new HttpError('HTTP_RESPONSE_LENGTH_MISMATCH', `response body of ${sent} bytes, Content-Length ${expected}`);
  } finally {
    timer.clear();
  }
}
