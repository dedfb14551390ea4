import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { HttpError } from './errors.js';
import type { HeadError } from './errors.js';
import { Exchange } from './exchange.js';
import type { ExchangeHost } from './exchange.js';
import { scanHead } from './head-scanner.js';
import { IdleTimer } from './idle-timer.js';
import type { TimerKind } from './idle-timer.js';
import type { HttpLimits } from './limits.js';
import { parseRequestHead } from './request-head.js';
import type { RequestHead } from './request-head.js';
import { serializeHead } from './response-writer.js';
import type { HttpHandler, ResponseHeaders } from './types.js';

/** Formats the answer to a head that could not be parsed; the connection is closed afterwards. */
export type BadRequestHandler = (error: HeadError) => { status: number; headers: ResponseHeaders };

const EMPTY = Buffer.alloc(0);

/**
 * Where the connection is:
 * - `idle`: waiting for the first byte of a request head (a new or a kept-alive connection);
 * - `head`: a head has begun and is not complete; its deadline runs;
 * - `exchange`: a request is being served ({@link Exchange} says how far its body and answer are);
 * - `blocked`: the answers are written but the client does not read them: no request is read until it does;
 * - `lingering`: our side is ended; what the client still sends is discarded until it closes;
 * - `closed`: the socket is gone.
 */
type Phase = 'idle' | 'head' | 'exchange' | 'blocked' | 'lingering' | 'closed';

/** The phases in which each kind of timer may run. */
const TIMER_PHASES: Readonly<Record<TimerKind, readonly Phase[]>> = {
  head: ['idle', 'head'],
  'keep-alive': ['idle', 'blocked'],
  body: ['exchange'],
  drain: ['exchange'],
  answer: ['exchange'],
  write: ['exchange'],
  linger: ['lingering'],
};

/**
 * One HTTP/1.1 connection: parses request heads (any method token), streams Content-Length and
 * chunked bodies with backpressure, answers pipelined requests in order, keeps the connection
 * alive, and enforces the limits and idle timeouts of {@link HttpLimits}.
 * One per accepted socket, made by `HttpServer`; not part of the engine's exports.
 */
export class Connection {
  private phase: Phase = 'idle';
  /** The request being served: set exactly in the `exchange` phase. */
  private exchange: Exchange | null = null;
  /** Bytes received and not yet used: the next head (pipelined requests wait here). */
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  /** Flow control, apart from the phase: the socket is not read (backpressure, 100-continue, limits). */
  private paused = false;
  /** The client has sent FIN. */
  private peerEnded = false;
  /** close() was called: answer what is in progress, then close. */
  private shuttingDown = false;
  private readonly timer: IdleTimer;
  private readonly encrypted: boolean;
  /** What each exchange sees of this connection. */
  private readonly host: ExchangeHost;

  constructor(
    private readonly socket: Socket,
    private readonly handler: HttpHandler,
    private readonly limits: HttpLimits,
    private readonly badRequest: BadRequestHandler,
    private readonly logger: Logger,
    private readonly onClose: (c: Connection) => void,
  ) {
    this.encrypted = 'encrypted' in socket && (socket as { encrypted?: boolean }).encrypted === true;
    this.timer = new IdleTimer(limits, (kind, error) => this.onTimeout(kind, error));
    const self = this;
    this.host = {
      socket,
      limits,
      logger,
      timer: this.timer,
      get shuttingDown() {
        return self.shuttingDown;
      },
      isCurrent: (ex) => this.exchange === ex,
      isClosed: () => this.phase === 'closed',
      arm: (kind) => this.arm(kind),
      pause: () => this.pause(),
      resume: () => this.resume(),
      linger: () => this.linger(),
      finished: () => this.maybeFinish(),
    };
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.logger.debug({ err, remote: socket.remoteAddress }, 'socket error'));
    socket.on('close', () => this.onSocketClose());
    // (the first head of a connection has its deadline from the connect, and again from its first byte)
    this.arm('head');
  }

  /** Whether no request is in progress and no bytes of the next one have arrived. */
  get idle(): boolean {
    return this.exchange === null && this.bufferedBytes === 0;
  }

  /** Asks the connection to close after the current request (graceful shutdown). */
  shutdown(): void {
    this.shuttingDown = true;
    // linger rather than a bare end(): a client that never closes its side must not hold the socket
    if (this.idle && this.phase !== 'lingering' && this.phase !== 'closed') this.linger();
  }

  /** Closes at once. */
  destroy(): void {
    this.socket.destroy();
  }

  /** Arms the timer for `kind`, which must belong to the current phase. */
  private arm(kind: TimerKind): void {
    assert.ok(TIMER_PHASES[kind].includes(this.phase), `${kind} timer armed in phase ${this.phase}`);
    this.timer.arm(kind);
  }

  private onTimeout(kind: TimerKind, error: HttpError): void {
    assert.ok(TIMER_PHASES[kind].includes(this.phase), `${kind} timer fired in phase ${this.phase}`);
    this.logger.debug({ remote: this.socket.remoteAddress, code: error.code }, 'connection timed out');
    this.exchange?.timedOut(error);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    assert.notEqual(this.phase, 'closed', 'data after close');
    if (this.phase === 'lingering') return;
    const ex = this.exchange;
    // (a broken body pauses the socket; bytes already read after the fault cannot be framed)
    if (ex?.bodyPhase === 'broken') return;
    if (ex?.reading) {
      chunk = ex.take(chunk);
      // the exchange may have closed the connection (shutdown, a drain too long): parse nothing more
      if (chunk.length === 0 || this.isLingering()) return;
    }
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    if (this.phase === 'exchange') {
      // A pipelined request waits for the current one; bound what we hold.
      if (this.bufferedBytes > this.limits.maxHead) this.pause();
      return;
    }
    this.parseNext();
  }


  /** (a method, not `this.phase === …`: the check follows a call that may have moved the phase on) */
  private isLingering(): boolean {
    return this.phase === 'lingering';
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Parses and dispatches the next buffered request, if a whole head is there. */
  private parseNext(): void {
    // (called again from several places once the way may be clear: only these phases read a head)
    if (this.phase !== 'idle' && this.phase !== 'head') return;
    const ending = this.shuttingDown || this.peerEnded;
    if (this.bufferedBytes === 0) {
      if (ending) this.socket.end();
      return;
    }
    const data = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered, this.bufferedBytes);
    const scan = scanHead(data, this.limits, this.peerEnded);
    if (scan.kind === 'none') {
      // only empty lines were left: a client that has sent FIN gets no more requests (11)
      this.keep(EMPTY);
      if (ending) this.socket.end();
      return;
    }
    if (this.phase === 'idle') {
      // the header deadline runs from the first byte of a head and is not refreshed by more bytes
      this.phase = 'head';
      this.arm('head');
    }
    switch (scan.kind) {
      case 'partial':
        this.keep(scan.pending);
        return;
      case 'truncated':
        this.keep(scan.pending);
        this.logger.debug({ remote: this.socket.remoteAddress }, 'incomplete request head at end of stream');
        this.socket.end();
        return;
      case 'error':
        this.reject(scan.error);
        return;
      case 'head': {
        this.keep(scan.rest);
        const parsed = parseRequestHead(scan.text, this.limits);
        if (parsed.ok) this.dispatch(parsed.head);
        else this.reject(parsed.error);
      }
    }
  }

  /** Holds `bytes` as the only buffered input. */
  private keep(bytes: Buffer): void {
    this.buffered = bytes.length ? [bytes] : [];
    this.bufferedBytes = bytes.length;
  }

  /** Answers an unparseable head and closes: the rest of the stream cannot be framed. */
  private reject(error: HeadError): void {
    assert.equal(this.phase, 'head');
    this.timer.clear();
    this.keep(EMPTY);
    this.logger.info({ remote: this.socket.remoteAddress, code: error.code, status: error.status }, error.message);
    let answer: { status: number; headers: ResponseHeaders };
    try {
      answer = this.badRequest(error);
    } catch {
      answer = { status: error.status, headers: { 'Content-Length': '0' } };
    }
    this.socket.write(serializeHead(answer.status, { ...answer.headers, 'Content-Length': '0' }, false));
    this.linger();
  }

  /**
   * Ends our side and discards whatever the client still sends for a moment, so that unread bytes
   * do not turn the close into a reset that destroys the response in flight.
   */
  private linger(): void {
    // Idempotent: a handler that answers synchronously from an abort or 'data' listener may already
    // have closed the exchange; asserting here would throw inside a socket event and end the process.
    if (this.phase === 'lingering' || this.phase === 'closed') return;
    this.phase = 'lingering';
    this.exchange = null;
    this.keep(EMPTY);
    this.socket.end();
    this.resume();
    this.arm('linger');
  }

  private dispatch(head: RequestHead): void {
    assert.equal(this.phase, 'head');
    this.phase = 'exchange';
    const ex = new Exchange(head, this.host, head.keepAlive && !this.shuttingDown);
    this.exchange = ex;
    if (ex.bodyPhase === 'complete') {
      ex.body.finish();
      this.timer.clear();
    } else {
      // With Expect: 100-continue the client waits for us: the body idle clock starts when the
      // handler asks for the body.
      if (head.expectContinue) this.timer.clear();
      else this.arm('body');
      const first = this.buffered.length ? this.buffered[0]! : EMPTY;
      this.keep(EMPTY);
      if (first.length) {
        // The head and the start of the body came in one read.
        queueMicrotask(() => {
          if (this.exchange === ex) this.onData(first);
        });
      }
      // Wait until the handler actually reads before telling the client to send.
      if (head.expectContinue) this.pause();
      if (this.peerEnded) {
        // A pipelined request whose client has sent FIN: once the bytes already here are taken
        // (the microtask above), a body still incomplete never will be (11).
        queueMicrotask(() => {
          // (a broken body is not waited for: its handler is answering, then the connection closes)
          if (this.exchange === ex && ex.reading) ex.peerEnded();
        });
      }
    }
    let result: void | Promise<void>;
    try {
      result = this.handler(ex.request(this.encrypted), ex.response());
    } catch (err) {
      ex.handlerFailed(err);
      return;
    }
    if (result && typeof result.then === 'function') {
      result.then(
        () => {
          if (ex.answer === 'none') ex.handlerFailed(new HttpError('HTTP_NO_RESPONSE'));
        },
        (err: unknown) => ex.handlerFailed(err),
      );
    }
  }

  /** The exchange is over when its answer is written and its body read: go on to the next request, or close. */
  private maybeFinish(): void {
    assert.equal(this.phase, 'exchange');
    const ex = this.exchange;
    if (!ex || ex.answer !== 'done' || ex.bodyPhase !== 'complete') return;
    if (!ex.staysOpen) {
      this.linger();
      return;
    }
    this.exchange = null;
    this.phase = 'idle';
    this.arm('keep-alive');
    if (this.socket.writableNeedDrain) {
      // The client does not read its answers: read (and answer) no more requests until it does,
      // so that pipelined requests cannot pile up answers in memory.
      this.pause();
      this.phase = 'blocked';
      this.socket.once('drain', () => {
        if (this.phase !== 'blocked') return;
        this.phase = 'idle';
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
    assert.notEqual(this.phase, 'closed', 'end after close');
    this.peerEnded = true;
    const ex = this.exchange;
    if (ex?.reading) {
      ex.peerEnded();
      return;
    }
    // (a broken body's handler is answering; the connection closes after that answer)
    if (!ex) this.parseNext();
  }

  private onSocketClose(): void {
    assert.notEqual(this.phase, 'closed', 'closed twice');
    this.phase = 'closed';
    this.timer.clear();
    this.exchange?.closed();
    this.exchange = null;
    this.onClose(this);
  }
}
