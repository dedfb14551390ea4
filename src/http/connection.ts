import { Readable } from 'node:stream';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ChunkedDecoder } from './chunked-decoder.js';
import type { ChunkedBodyError } from './chunked-decoder.js';
import { parseContentLength } from './content-length.js';
import type { HttpLimits } from './limits.js';
import { parseRequestHead } from './request-head.js';
import type { HeadError, RequestHead } from './request-head.js';
import { statusText } from './status-text.js';
import type { HttpHandler, HttpRequest, HttpResponse, ResponseHeaders } from './types.js';

/** Formats the answer to a head that could not be parsed; the connection is closed afterwards. */
export type BadRequestHandler = (error: HeadError) => { status: number; headers: ResponseHeaders };

const CRLF2 = Buffer.from('\r\n\r\n');
const CONTINUE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n');
const EMPTY = Buffer.alloc(0);

let cachedDate = '';
let cachedDateAt = 0;
function httpDate(): string {
  const now = Date.now();
  if (now - cachedDateAt >= 1000) {
    cachedDate = new Date(now).toUTCString();
    cachedDateAt = now - (now % 1000);
  }
  return cachedDate;
}

/** Most body bytes held for a handler that is not reading before the socket is paused. */
const BODY_HIGH_WATER = 64 * 1024;
/** Size of the buffer that gathers small reads while the handler is not reading. */
const STAGE_SIZE = 16 * 1024;

/**
 * The request body: fed by the connection, paused and resumed for backpressure.
 *
 * A Readable counts its high-water mark in bytes, but every Buffer it holds costs a hundred bytes or
 * more besides: a client sending 1-byte chunks, or a byte per TCP segment, would have a handler that
 * is not reading yet (waiting for a session lock) hold tens of thousands of tiny Buffers, a hundred
 * times the body. So each read goes in as one Buffer ({@link feed}), and while the handler has bytes
 * left to read, small reads are copied into one staging buffer instead of being pushed one by one:
 * what is held is then, within a few Buffers, the decoded bytes themselves, and the room
 * {@link feed} reports (which pauses the socket) counts them all.
 */
class BodyStream extends Readable {
  private stage: Buffer | null = null;
  private staged = 0;

  constructor(private readonly onDemand: () => void) {
    super({ highWaterMark: BODY_HIGH_WATER });
    // The engine destroys the body with an error when the client goes away or goes idle. A handler
    // that has not started reading yet (waiting for a lock, say) has no 'error' listener: without
    // this one, that error would be an uncaught exception and take the whole server down. A handler
    // that reads later still gets the error (from the iterator, pipeline or its own listener).
    this.on('error', () => undefined);
  }

  /**
   * Takes the body bytes of one socket read (one or more views into it).
   *
   * @returns whether the handler has room for more (false: pause the socket until it reads)
   */
  feed(parts: readonly Buffer[]): boolean {
    let length = 0;
    for (const part of parts) length += part.length;
    if (length > 0) {
      // Nothing unread (the handler is waiting for bytes), or a read large enough to be worth its
      // own Buffer: straight in, after whatever was staged so that the order stays.
      if (this.readableLength === 0 || length >= STAGE_SIZE) {
        this.flushStage();
        this.push(join(parts, length));
      } else {
        if (this.staged + length > STAGE_SIZE) this.flushStage();
        this.stage ??= Buffer.allocUnsafe(STAGE_SIZE);
        for (const part of parts) this.staged += part.copy(this.stage, this.staged);
      }
    }
    if (this.readableLength + this.staged < BODY_HIGH_WATER) return true;
    // Full: the socket will be paused, and only a read can resume it (_read). Hand the staged bytes
    // over first, so that they are not kept from a handler that reads everything else.
    this.flushStage();
    return false;
  }

  /** The body is complete: the staged bytes, then the end. */
  finish(): void {
    this.flushStage();
    this.push(null);
  }

  /** Hands the staged bytes to the stream as one Buffer. */
  flushStage(): void {
    if (this.staged === 0) return;
    const staged = this.stage!.subarray(0, this.staged);
    this.stage = null;
    this.staged = 0;
    this.push(staged);
  }

  /**
   * Every consumer (iterator, 'data', pipe) takes bytes through read(): the staged ones join the
   * stream's buffer first. `read(0)` only refreshes (the stream calls it on its own to fill up to the
   * high-water mark): it leaves them staged, else each read would again become its own Buffer.
   */
  override read(size?: number): Buffer | null {
    if (size !== 0) this.flushStage();
    return super.read(size) as Buffer | null;
  }

  override _read(): void {
    this.onDemand();
  }
}

/** `parts` (of `length` bytes in all) as one Buffer: a copy when there are several. */
function join(parts: readonly Buffer[], length: number): Buffer {
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
}

/**
 * Where the request body is:
 * - `streaming`: bytes still to come go to the handler's body stream;
 * - `draining`: the handler has answered; bytes still to come are read and discarded;
 * - `complete`: every body byte has been read (or there is no body);
 * - `broken`: the chunked framing is malformed; nothing more is read, the connection closes.
 */
type BodyPhase = 'streaming' | 'draining' | 'complete' | 'broken';

/** State of the request being served. */
interface Exchange {
  head: RequestHead;
  body: BodyStream | null;
  phase: BodyPhase;
  /** Body bytes still to come from the socket (Content-Length framing). */
  remaining: number;
  /** The decoder of a chunked body; `null` for Content-Length framing. */
  chunked: ChunkedDecoder | null;
  /** Bytes discarded while draining (a chunked body of unknown length is drained up to maxDrain). */
  drained: number;
  responseStarted: boolean;
  responseDone: boolean;
  continueSent: boolean;
  keepAlive: boolean;
  abort: AbortController;
}

/**
 * One HTTP/1.1 connection: parses request heads (any method token), streams Content-Length and
 * chunked bodies with backpressure, answers pipelined requests in order, keeps the connection
 * alive, and enforces the limits and idle timeouts of {@link HttpLimits}.
 */
export class Connection {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private exchange: Exchange | null = null;
  private closing = false;
  private closed = false;
  private paused = false;
  private headStarted = false;
  private lingering = false;
  private peerEnded = false;
  /** The next request waits until the client has read our earlier answers (socket 'drain'). */
  private awaitingDrain = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly encrypted: boolean;

  constructor(
    private readonly socket: Socket,
    private readonly handler: HttpHandler,
    private readonly limits: HttpLimits,
    private readonly badRequest: BadRequestHandler,
    private readonly logger: Logger,
    private readonly onClose: (c: Connection) => void,
  ) {
    this.encrypted = 'encrypted' in socket && (socket as { encrypted?: boolean }).encrypted === true;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => {
      this.logger.debug({ err, remote: socket.remoteAddress }, 'socket error');
    });
    socket.on('close', () => this.onSocketClose());
    this.setTimer(this.limits.headerTimeoutMs, 'header timeout');
  }

  /** Whether no request is in progress and no bytes of the next one have arrived. */
  get idle(): boolean {
    return this.exchange === null && this.bufferedBytes === 0;
  }

  /** Asks the connection to close after the current request (graceful shutdown). */
  shutdown(): void {
    this.closing = true;
    // linger rather than a bare end(): a client that never closes its side must not hold the socket
    if (this.idle && !this.lingering && !this.closed) this.linger();
  }

  /** Closes at once. */
  destroy(): void {
    this.socket.destroy();
  }

  private setTimer(ms: number, why: string): void {
    this.clearTimer();
    this.timer = setTimeout(() => this.onTimeout(why), ms);
    this.timer.unref();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onTimeout(why: string): void {
    this.logger.debug({ remote: this.socket.remoteAddress, why }, 'connection timed out');
    if (this.exchange?.body && this.exchange.phase === 'streaming') {
      this.exchange.body.destroy(new Error(`request body ${why}`));
    }
    this.exchange?.abort.abort(new Error(why));
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.lingering) return;
    const ex = this.exchange;
    // (a broken body pauses the socket; bytes already read after the fault cannot be framed)
    if (ex?.phase === 'broken') return;
    if (ex && (ex.phase === 'streaming' || ex.phase === 'draining')) {
      chunk = this.takeBody(ex, chunk);
      // maybeFinish() may have closed the connection (shutdown): parse nothing more
      if (chunk.length === 0 || this.lingering || this.closed) return;
    }
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.exchange) {
      // A pipelined request waits for the current one; bound what we hold.
      if (this.bufferedBytes > this.limits.maxHead) this.pause();
      return;
    }
    this.parseNext();
  }

  /** Takes the body bytes at the start of `chunk` (framed by length or chunked); returns what follows the body. */
  private takeBody(ex: Exchange, chunk: Buffer): Buffer {
    let parts: Buffer[];
    let consumed: number;
    let complete: boolean;
    if (ex.chunked) {
      const out = ex.chunked.push(chunk);
      if (out.error) {
        if (ex.phase === 'streaming') {
          this.deliver(ex, out.data, false);
          // (the bytes before the fault reach the stream as they would have without the fault)
          ex.body!.flushStage();
        }
        this.onBrokenBody(ex, out.error);
        return EMPTY;
      }
      ({ data: parts, consumed } = out);
      complete = ex.chunked.done;
    } else {
      consumed = Math.min(chunk.length, ex.remaining);
      parts = consumed === 0 ? [] : [consumed === chunk.length ? chunk : chunk.subarray(0, consumed)];
      ex.remaining -= consumed;
      complete = ex.remaining === 0;
    }
    const rest = consumed === chunk.length ? EMPTY : chunk.subarray(consumed);
    if (ex.phase === 'draining') this.drain(ex, consumed, complete);
    else this.deliver(ex, parts, complete);
    return rest;
  }

  /** Hands body bytes to the handler's stream; pauses the socket when the handler does not keep up. */
  private deliver(ex: Exchange, parts: Buffer[], complete: boolean): void {
    // (set before pushing: a handler may answer synchronously from a 'data' listener)
    if (complete) ex.phase = 'complete';
    if (this.timer) this.timer.refresh();
    // (one Buffer per socket read at most: see BodyStream)
    const room = ex.body!.feed(parts);
    if (complete) {
      ex.body!.finish();
      this.clearTimer();
    } else if (!room && ex.phase === 'streaming') {
      // The handler is not keeping up: stop reading, and stop the body idle clock too, since
      // the client is not the one who is idle. onBodyDemand() restarts both.
      this.pause();
      this.clearTimer();
    }
  }

  /** Discards body bytes after an early answer: the next request follows them, or beyond maxDrain we close. */
  private drain(ex: Exchange, consumed: number, complete: boolean): void {
    ex.drained += consumed;
    if (complete) {
      ex.phase = 'complete';
      this.clearTimer();
      this.maybeFinish();
    } else if (ex.drained > this.limits.maxDrain) {
      // (only a chunked body gets here: a Content-Length one over maxDrain was refused keep-alive)
      this.linger();
    } else if (this.timer) this.timer.refresh();
  }

  /** The chunked framing is malformed: the body fails, and the connection closes after the answer. */
  private onBrokenBody(ex: Exchange, error: ChunkedBodyError): void {
    this.logger.info({ remote: this.socket.remoteAddress, reason: error.message }, 'malformed chunked body');
    const wasStreaming = ex.phase === 'streaming';
    ex.phase = 'broken';
    ex.keepAlive = false;
    this.pause();
    if (ex.responseDone) {
      this.linger();
      return;
    }
    if (wasStreaming) ex.body?.destroy(error);
    // bound the wait for the handler's answer (it has been told through its body)
    if (!ex.responseStarted) this.setTimer(this.limits.bodyIdleTimeoutMs, 'answer to a malformed body');
  }

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.socket.pause();
    }
  }

  private resume(): void {
    if (this.paused) {
      this.paused = false;
      this.socket.resume();
    }
  }

  /** Parses and dispatches the next buffered request, if a whole head is there. */
  private parseNext(): void {
    if (this.exchange || this.closed || this.awaitingDrain) return;
    if (this.bufferedBytes === 0) {
      if (this.closing || this.peerEnded) this.socket.end();
      return;
    }
    let data = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.bufferedBytes);
    // RFC 9112 §2.2: ignore empty lines before a request line.
    let start = 0;
    while (start + 1 < data.length && data[start] === 0x0d && data[start + 1] === 0x0a) start += 2;
    if (start > 0) data = data.subarray(start);
    this.buffered = data.length ? [data] : [];
    this.bufferedBytes = data.length;
    if (data.length === 0) {
      // only empty lines were left: a client that has sent FIN gets no more requests (11)
      if (this.closing || this.peerEnded) this.socket.end();
      return;
    }
    if (!this.headStarted) {
      // the header deadline runs from the first byte of a head and is not refreshed by more bytes
      this.headStarted = true;
      this.setTimer(this.limits.headerTimeoutMs, 'header timeout');
    }
    const end = data.indexOf(CRLF2);
    // The request line is judged as soon as it is longer than allowed, complete or not; its CR
    // (which may arrive without its LF) is not part of it.
    const lf = data.indexOf(0x0a);
    let lineLength = lf === -1 ? data.length : lf;
    if (lineLength > 0 && data[lineLength - 1] === 0x0d) lineLength--;
    if (lineLength > this.limits.maxRequestLine) {
      this.reject({ status: 414, code: 'HTTP_REQUEST_LINE_TOO_LONG', message: 'request line too long' });
      return;
    }
    if (end === -1 && this.peerEnded) {
      this.logger.debug({ remote: this.socket.remoteAddress }, 'incomplete request head at end of stream');
      this.socket.end();
      return;
    }
    if (end === -1) {
      if (data.length > this.limits.maxHead) {
        this.reject({ status: 431, code: 'HTTP_HEAD_TOO_LARGE', message: 'request head too large' });
      }
      return;
    }
    if (end > this.limits.maxHead) {
      this.reject({ status: 431, code: 'HTTP_HEAD_TOO_LARGE', message: 'request head too large' });
      return;
    }
    const rest = data.subarray(end + 4);
    this.buffered = rest.length ? [rest] : [];
    this.bufferedBytes = rest.length;
    this.headStarted = false;
    const parsed = parseRequestHead(data.toString('latin1', 0, end), this.limits);
    if (!parsed.ok) {
      this.reject(parsed.error);
      return;
    }
    this.dispatch(parsed.head);
  }

  /** Answers an unparseable head and closes: the rest of the stream cannot be framed. */
  private reject(error: HeadError): void {
    this.clearTimer();
    this.buffered = [];
    this.bufferedBytes = 0;
    this.logger.info({ remote: this.socket.remoteAddress, code: error.code, status: error.status }, error.message);
    let answer: { status: number; headers: ResponseHeaders };
    try {
      answer = this.badRequest(error);
    } catch {
      answer = { status: error.status, headers: { 'Content-Length': '0' } };
    }
    this.exchange = null;
    this.socket.write(this.serializeHead(answer.status, { ...answer.headers, 'Content-Length': '0' }, false));
    this.linger();
  }

  /**
   * Ends our side and discards whatever the client still sends for a moment, so that unread bytes
   * do not turn the close into a reset that destroys the response in flight.
   */
  private linger(): void {
    this.closing = true;
    this.lingering = true;
    this.exchange = null;
    this.buffered = [];
    this.bufferedBytes = 0;
    this.socket.end();
    this.resume();
    this.setTimer(2000, 'linger');
  }

  private dispatch(head: RequestHead): void {
    const length = head.contentLength ?? 0;
    const abort = new AbortController();
    const ex: Exchange = {
      head,
      body: null,
      phase: head.chunked || length > 0 ? 'streaming' : 'complete',
      remaining: length,
      // (trailers are a head of sorts: they get the head's bound, and are discarded)
      chunked: head.chunked ? new ChunkedDecoder(this.limits.maxHead) : null,
      drained: 0,
      responseStarted: false,
      responseDone: false,
      continueSent: false,
      keepAlive: head.keepAlive && !this.closing,
      abort,
    };
    this.exchange = ex;
    const body = new BodyStream(() => this.onBodyDemand(ex));
    ex.body = body;
    if (ex.phase === 'complete') {
      body.push(null);
      this.clearTimer();
    } else {
      // With Expect: 100-continue the client waits for us: the body idle clock starts when the
      // handler asks for the body (onBodyDemand).
      if (head.expectContinue) this.clearTimer();
      else this.setTimer(this.limits.bodyIdleTimeoutMs, 'body idle timeout');
      const first = this.buffered.length ? this.buffered[0]! : EMPTY;
      this.buffered = [];
      this.bufferedBytes = 0;
      if (first.length) {
        // The head and the start of the body came in one read.
        queueMicrotask(() => {
          if (this.exchange === ex) this.onData(first);
        });
      }
      if (head.expectContinue) {
        // Wait until the handler actually reads before telling the client to send.
        this.pause();
      }
      if (this.peerEnded) {
        // A pipelined request whose client has sent FIN: once the bytes already here are taken
        // (the microtask above), a body still incomplete never will be (11).
        queueMicrotask(() => {
          // (a broken body is not waited for: its handler is answering, then the connection closes)
          if (this.exchange === ex && (ex.phase === 'streaming' || ex.phase === 'draining')) this.endedMidBody(ex);
        });
      }
    }
    const socket = this.socket;
    const request: HttpRequest = {
      method: head.method,
      target: head.target,
      path: head.path,
      query: head.query,
      httpVersion: head.httpVersion,
      headers: head.headers,
      contentLength: head.contentLength,
      chunked: head.chunked,
      body,
      remoteAddress: socket.remoteAddress ?? '',
      encrypted: this.encrypted,
      socket,
      signal: abort.signal,
    };
    const response = this.makeResponse(ex);
    let result: void | Promise<void>;
    try {
      result = this.handler(request, response);
    } catch (err) {
      this.onHandlerError(ex, err);
      return;
    }
    if (result && typeof result.then === 'function') {
      result.then(
        () => {
          if (!ex.responseStarted) this.onHandlerError(ex, new Error('handler returned without responding'));
        },
        (err: unknown) => this.onHandlerError(ex, err),
      );
    }
  }

  private onBodyDemand(ex: Exchange): void {
    if (this.exchange !== ex || ex.phase !== 'streaming' || this.closed) return;
    if (ex.head.expectContinue && !ex.continueSent && !ex.responseStarted) {
      ex.continueSent = true;
      this.socket.write(CONTINUE);
    }
    // (re)start the body idle clock: from now on we wait for the client
    if (this.timer) this.timer.refresh();
    else this.setTimer(this.limits.bodyIdleTimeoutMs, 'body idle timeout');
    this.resume();
  }

  private onHandlerError(ex: Exchange, err: unknown): void {
    // A handler that fails because its connection went away, or because the client's chunked
    // framing is malformed, is not a server error: the latter is answered 400.
    const clientFault = ex.phase === 'broken';
    if (this.closed || ex.abort.signal.aborted || clientFault) {
      this.logger.debug({ err }, 'request handler failed on a bad or lost request');
    } else this.logger.error({ err }, 'request handler failed');
    if (!ex.responseStarted && this.exchange === ex && !this.closed) {
      ex.keepAlive = false;
      ex.responseStarted = true;
      this.socket.write(this.serializeHead(clientFault ? 400 : 500, { 'Content-Length': '0' }, false));
      this.responseFinished(ex);
    } else if (!ex.responseDone && this.exchange === ex) {
      // (an exchange already let go of is closing gracefully: earlier answers are still flushing)
      this.socket.destroy();
    }
  }

  private makeResponse(ex: Exchange): HttpResponse {
    const start = (status: number, headers: ResponseHeaders): Buffer => {
      if (ex.responseStarted) throw new Error('response already started');
      if (this.exchange !== ex || this.closed) throw new Error('connection is gone');
      let keepAlive = ex.keepAlive && !this.closing;
      if (ex.phase === 'streaming') {
        // The handler answers before reading the whole body: drain the rest if it is small enough
        // (and the client was not left waiting on 100-continue), else close after the response.
        // A chunked body's rest is unknown: it is drained up to maxDrain, then the connection closes.
        const waitingForContinue = ex.head.expectContinue && !ex.continueSent;
        if (waitingForContinue || (!ex.chunked && ex.remaining > this.limits.maxDrain)) keepAlive = false;
      }
      const head = this.serializeHead(status, headers, keepAlive, ex.head.httpVersion === '1.0');
      ex.keepAlive = keepAlive;
      ex.responseStarted = true;
      return head;
    };
    const self = this;
    return {
      get headersSent() {
        return ex.responseStarted;
      },
      send(status, headers, body) {
        const head = start(status, headers);
        self.socket.write(body && body.length ? Buffer.concat([head, Buffer.from(body)]) : head);
        self.responseFinished(ex);
      },
      async stream(status, headers, body) {
        const declared = headers['Content-Length'] ?? headers['content-length'];
        const expected = declared === undefined ? undefined : parseContentLength(declared);
        if (expected === undefined) throw new Error('stream() needs a Content-Length header');
        const head = start(status, headers);
        self.socket.write(head);
        try {
          await self.writeBody(body, expected);
        } catch (err) {
          body.destroy();
          self.socket.destroy();
          throw err;
        }
        self.responseFinished(ex);
      },
      destroy() {
        ex.keepAlive = false;
        self.socket.destroy();
      },
    };
  }

  /**
   * Writes a response body with backpressure and an idle (no progress) timeout; fails when the
   * connection goes away or the body is not exactly `expected` bytes long.
   */
  private async writeBody(body: Readable, expected: number): Promise<void> {
    const socket = this.socket;
    let sent = 0;
    this.setTimer(this.limits.writeIdleTimeoutMs, 'write idle timeout');
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (socket.destroyed) throw new Error('connection closed during the response');
        sent += chunk.length;
        if (sent > expected) throw new Error(`response body longer than its Content-Length ${expected}`);
        this.timer?.refresh();
        if (!socket.write(chunk)) {
          await new Promise<void>((resolve, reject) => {
            const done = (err?: Error): void => {
              socket.off('drain', onDrain);
              socket.off('close', onClose);
              if (err) reject(err);
              else resolve();
            };
            const onDrain = (): void => done();
            const onClose = (): void => done(new Error('connection closed during the response'));
            socket.on('drain', onDrain);
            socket.on('close', onClose);
          });
        }
      }
      if (sent !== expected) throw new Error(`response body of ${sent} bytes, Content-Length ${expected}`);
    } finally {
      this.clearTimer();
    }
  }

  private serializeHead(status: number, headers: ResponseHeaders, keepAlive: boolean, http10 = false): Buffer {
    let out = `HTTP/1.1 ${status} ${statusText(status)}\r\nDate: ${httpDate()}\r\n`;
    for (const [name, value] of Object.entries(headers)) {
      if (/[\r\n\0]/.test(name) || /[\r\n\0]/.test(value)) throw new Error(`invalid response header ${name}`);
      out += `${name}: ${value}\r\n`;
    }
    if (!keepAlive) out += 'Connection: close\r\n';
    else if (http10) out += 'Connection: keep-alive\r\n';
    out += '\r\n';
    return Buffer.from(out, 'latin1');
  }

  /** The handler has written its response: detach the body, drain what is left, go on or close. */
  private responseFinished(ex: Exchange): void {
    ex.responseDone = true;
    if (ex.phase === 'complete') {
      this.maybeFinish();
      return;
    }
    ex.body?.destroy();
    if (!ex.keepAlive || ex.phase === 'broken') {
      this.linger();
      return;
    }
    ex.phase = 'draining';
    this.setTimer(this.limits.bodyIdleTimeoutMs, 'drain idle timeout');
    this.resume();
  }

  private maybeFinish(): void {
    const ex = this.exchange;
    if (!ex || !ex.responseDone || ex.phase !== 'complete') return;
    this.exchange = null;
    if (!ex.keepAlive || this.closing) {
      this.linger();
      return;
    }
    this.setTimer(this.limits.keepAliveTimeoutMs, 'keep-alive timeout');
    if (this.socket.writableNeedDrain) {
      // The client does not read its answers: read (and answer) no more requests until it does,
      // so that pipelined requests cannot pile up answers in memory.
      this.pause();
      this.awaitingDrain = true;
      this.socket.once('drain', () => {
        this.awaitingDrain = false;
        if (this.closed || this.lingering) return;
        this.resume();
        this.parseNext();
      });
      return;
    }
    this.resume();
    // parseNext() alone decides whether to end after a FIN, with every byte of the stream in view:
    // this may run inside onData() (a body completed by the read that also carries the next request),
    // before the bytes after the body are buffered. Ending here on "nothing buffered" would drop those
    // requests' answers (a write after end).
    setImmediate(() => this.parseNext());
  }

  /** The client half-closed: finish the request in progress (if its body is complete), then close. */
  private onEnd(): void {
    this.peerEnded = true;
    const ex = this.exchange;
    if (ex && (ex.phase === 'streaming' || ex.phase === 'draining')) {
      this.endedMidBody(ex);
      return;
    }
    // (a broken body's handler is answering; the connection closes after that answer)
    if (!ex) this.parseNext();
  }

  /**
   * The client has sent FIN inside a body: the body will never be complete. An answer already made
   * is flushed, one being written is finished; otherwise the request is abandoned without one.
   * Either way the connection then ends gracefully, so that answers to earlier requests still in the
   * socket's buffer are delivered.
   */
  private endedMidBody(ex: Exchange): void {
    if (ex.body && ex.phase === 'streaming') ex.body.destroy(new Error('connection closed before the body was complete'));
    if (ex.responseStarted && !ex.responseDone) {
      // (responseFinished() closes, since there is nothing to drain toward)
      ex.keepAlive = false;
      return;
    }
    if (!ex.responseDone) ex.abort.abort(new Error('client closed the connection'));
    this.linger();
  }

  private onSocketClose(): void {
    this.closed = true;
    this.clearTimer();
    const ex = this.exchange;
    if (ex) {
      if (ex.phase === 'streaming' && ex.body) ex.body.destroy(new Error('connection closed before the body was complete'));
      if (!ex.responseDone) ex.abort.abort(new Error('connection closed'));
    }
    this.exchange = null;
    this.onClose(this);
  }
}
