import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { BodyStream } from './body-stream.js';
import { ChunkedDecoder } from './chunked-decoder.js';
import type { ChunkedBodyError } from './chunked-decoder.js';
import { parseContentLength } from './content-length.js';
import { HttpError } from './errors.js';
import type { IdleTimer, TimerKind } from './idle-timer.js';
import type { HttpLimits } from './limits.js';
import type { RequestHead } from './request-head.js';
import { CONTINUE, serializeHead, writeBody } from './response-writer.js';
import type { HttpRequest, HttpResponse, ResponseHeaders } from './types.js';

const EMPTY = Buffer.alloc(0);

/**
 * Where the request body is:
 * - `streaming`: bytes still to come go to the handler's body stream;
 * - `draining`: the handler has answered; bytes still to come are read and discarded;
 * - `complete`: every body byte has been read (or there is no body);
 * - `broken`: the chunked framing is malformed; nothing more is read, the connection closes.
 */
export type BodyPhase = 'streaming' | 'draining' | 'complete' | 'broken';

/** How far the answer is: not begun, its head written (a streamed body may be under way), or complete. */
export type AnswerPhase = 'none' | 'started' | 'done';

/** What an exchange needs of its connection. */
export interface ExchangeHost {
  readonly socket: Socket;
  readonly limits: HttpLimits;
  readonly logger: Logger;
  readonly timer: IdleTimer;
  /** close() was called: no answer keeps the connection open. */
  readonly shuttingDown: boolean;
  /** Whether `ex` is the request being served (not let go of, and the connection not closed). */
  isCurrent(ex: Exchange): boolean;
  /** Whether the socket has closed. */
  isClosed(): boolean;
  /** Arms the connection's timer for `kind` (checked against the connection's phase). */
  arm(kind: TimerKind): void;
  pause(): void;
  resume(): void;
  /** Ends the connection gracefully. */
  linger(): void;
  /** The answer is written and the body read: go on to the next request, or close. */
  finished(): void;
}

/**
 * One request and its answer on a connection: takes the body bytes the connection reads (framed by
 * Content-Length or chunked, streamed to the handler or drained after an early answer), and gives
 * the handler its {@link HttpResponse}.
 *
 * @example
 * ```ts
 * const ex = new Exchange(head, host, head.keepAlive);
 * handler(ex.request(false), ex.response());
 * const rest = ex.take(chunk); // the bytes after the body: the next request
 * ```
 */
export class Exchange {
  readonly body: BodyStream;
  bodyPhase: BodyPhase;
  answer: AnswerPhase = 'none';
  readonly abort = new AbortController();
  /** Body bytes still to come from the socket (Content-Length framing). */
  private remaining: number;
  /** The decoder of a chunked body; `null` for Content-Length framing. */
  private readonly chunked: ChunkedDecoder | null;
  /** Bytes discarded while draining (a chunked body of unknown length is drained up to maxDrain). */
  private drained = 0;
  private continueSent = false;

  /** @param keepAlive whether the connection may stay open after this exchange (decided again when the answer starts) */
  constructor(
    readonly head: RequestHead,
    private readonly host: ExchangeHost,
    private keepAlive: boolean,
  ) {
    const length = head.contentLength ?? 0;
    this.remaining = length;
    this.bodyPhase = head.chunked || length > 0 ? 'streaming' : 'complete';
    // (trailers are a head of sorts: they get the head's bound, and are discarded)
    this.chunked = head.chunked ? new ChunkedDecoder(host.limits.maxHead) : null;
    this.body = new BodyStream(() => this.onBodyDemand());
  }

  /** Whether body bytes are still to come from the client (to the handler, or drained). */
  get reading(): boolean {
    return this.bodyPhase === 'streaming' || this.bodyPhase === 'draining';
  }

  /** The request as the handler sees it. */
  request(encrypted: boolean): HttpRequest {
    const { head, host } = this;
    return {
      method: head.method,
      target: head.target,
      path: head.path,
      query: head.query,
      httpVersion: head.httpVersion,
      headers: head.headers,
      contentLength: head.contentLength,
      chunked: head.chunked,
      body: this.body,
      remoteAddress: host.socket.remoteAddress ?? '',
      encrypted,
      socket: host.socket,
      signal: this.abort.signal,
    };
  }

  /** Takes the body bytes at the start of `chunk` (framed by length or chunked); returns what follows the body. */
  take(chunk: Buffer): Buffer {
    assert.ok(this.reading, `body bytes taken in body phase ${this.bodyPhase}`);
    let parts: Buffer[];
    let consumed: number;
    let complete: boolean;
    if (this.chunked) {
      const out = this.chunked.push(chunk);
      if (out.error) {
        if (this.bodyPhase === 'streaming') {
          this.deliver(out.data, false);
          // (the bytes before the fault reach the stream as they would have without the fault)
          this.body.flushStage();
        }
        this.onBrokenBody(out.error);
        return EMPTY;
      }
      ({ data: parts, consumed } = out);
      complete = this.chunked.done;
    } else {
      consumed = Math.min(chunk.length, this.remaining);
      parts = consumed === 0 ? [] : [consumed === chunk.length ? chunk : chunk.subarray(0, consumed)];
      this.remaining -= consumed;
      complete = this.remaining === 0;
    }
    const rest = consumed === chunk.length ? EMPTY : chunk.subarray(consumed);
    if (this.bodyPhase === 'draining') this.drain(consumed, complete);
    else this.deliver(parts, complete);
    return rest;
  }

  /** Hands body bytes to the handler's stream; pauses the socket when the handler does not keep up. */
  private deliver(parts: Buffer[], complete: boolean): void {
    assert.equal(this.bodyPhase, 'streaming');
    const { host } = this;
    // (set before pushing: a handler may answer synchronously from a 'data' listener)
    if (complete) this.bodyPhase = 'complete';
    host.timer.refresh();
    // (one Buffer per socket read at most: see BodyStream)
    const room = this.body.feed(parts);
    // (a handler that answered synchronously may have let go of this exchange: the timer and the
    // socket are then the connection's, lingering or reading the next request)
    if (complete) {
      this.body.finish();
      if (host.isCurrent(this)) host.timer.clear();
    } else if (!room && this.bodyPhase === 'streaming' && host.isCurrent(this)) {
      // The handler is not keeping up: stop reading, and stop the body idle clock too, since
      // the client is not the one who is idle. onBodyDemand() restarts both.
      host.pause();
      host.timer.clear();
    }
  }

  /** Discards body bytes after an early answer: the next request follows them, or beyond maxDrain we close. */
  private drain(consumed: number, complete: boolean): void {
    assert.equal(this.bodyPhase, 'draining');
    this.drained += consumed;
    if (complete) {
      this.bodyPhase = 'complete';
      this.host.timer.clear();
      this.host.finished();
    } else if (this.drained > this.host.limits.maxDrain) {
      // (only a chunked body gets here: a Content-Length one over maxDrain was refused keep-alive)
      this.host.linger();
    } else this.host.timer.refresh();
  }

  /** The chunked framing is malformed: the body fails, and the connection closes after the answer. */
  private onBrokenBody(error: ChunkedBodyError): void {
    const { host } = this;
    host.logger.info({ remote: host.socket.remoteAddress, code: error.code, reason: error.message }, 'malformed chunked body');
    const wasStreaming = this.bodyPhase === 'streaming';
    this.bodyPhase = 'broken';
    this.keepAlive = false;
    host.pause();
    if (this.answer === 'done') {
      host.linger();
      return;
    }
    if (wasStreaming) this.body.destroy(error);
    // bound the wait for the handler's answer (it has been told through its body)
    if (this.answer === 'none') host.arm('answer');
  }

  private onBodyDemand(): void {
    const { host } = this;
    // (a late read: the request is over, or its body no longer comes from the client)
    if (!host.isCurrent(this) || this.bodyPhase !== 'streaming') return;
    if (this.head.expectContinue && !this.continueSent && this.answer === 'none') {
      this.continueSent = true;
      host.socket.write(CONTINUE);
    }
    // (re)start the body idle clock: from now on we wait for the client
    if (host.timer.kind === null) host.arm('body');
    else host.timer.refresh();
    host.resume();
  }

  /** The handler threw, rejected, or returned without answering. */
  handlerFailed(err: unknown): void {
    const { host } = this;
    // A handler that fails because its connection went away, or because the client's chunked
    // framing is malformed, is not a server error: the latter is answered 400.
    const clientFault = this.bodyPhase === 'broken';
    if (host.isClosed() || host.socket.destroyed || this.abort.signal.aborted || clientFault) {
      host.logger.debug({ err }, 'request handler failed on a bad or lost request');
    } else host.logger.error({ err }, 'request handler failed');
    // (an exchange already let go of is closing gracefully: earlier answers are still flushing)
    // (a connection the handler destroyed itself, such as a superseded request's, has no one to answer)
    if (!host.isCurrent(this) || host.socket.destroyed) return;
    if (this.answer === 'none') {
      this.keepAlive = false;
      this.answer = 'started';
      host.socket.write(serializeHead(clientFault ? 400 : 500, { 'Content-Length': '0' }, false));
      this.responseFinished();
    } else if (this.answer === 'started') host.socket.destroy();
  }

  /** Writes the status line and headers, deciding whether the connection stays open. */
  private start(status: number, headers: ResponseHeaders): Buffer {
    if (this.answer !== 'none') throw new HttpError('HTTP_RESPONSE_STARTED');
    if (!this.host.isCurrent(this)) throw new HttpError('HTTP_CONNECTION_CLOSED', 'connection is gone');
    let keepAlive = this.keepAlive && !this.host.shuttingDown;
    if (this.bodyPhase === 'streaming') {
      // The handler answers before reading the whole body: drain the rest if it is small enough
      // (and the client was not left waiting on 100-continue), else close after the response.
      // A chunked body's rest is unknown: it is drained up to maxDrain, then the connection closes.
      const waitingForContinue = this.head.expectContinue && !this.continueSent;
      if (waitingForContinue || (!this.chunked && this.remaining > this.host.limits.maxDrain)) keepAlive = false;
    }
    const head = serializeHead(status, headers, keepAlive, this.head.httpVersion === '1.0');
    this.keepAlive = keepAlive;
    this.answer = 'started';
    return head;
  }

  /** The response side of this request, for its handler. */
  response(): HttpResponse {
    const ex = this;
    const { socket } = this.host;
    return {
      get headersSent() {
        return ex.answer !== 'none';
      },
      send(status, headers, body) {
        const head = ex.start(status, headers);
        // (one write of head and body; a Buffer body is copied once, by the concat)
        socket.write(body && body.length ? Buffer.concat([head, typeof body === 'string' ? Buffer.from(body) : body]) : head);
        ex.responseFinished();
      },
      async stream(status, headers, body) {
        const declared = headers['Content-Length'] ?? headers['content-length'];
        const expected = typeof declared === 'string' ? parseContentLength(declared) : undefined;
        if (expected === undefined) throw new HttpError('HTTP_LENGTH_REQUIRED');
        socket.write(ex.start(status, headers));
        ex.host.arm('write');
        try {
          await writeBody(socket, body, expected, ex.host.timer);
        } catch (err) {
          body.destroy();
          socket.destroy();
          throw err;
        }
        ex.responseFinished();
      },
      destroy() {
        ex.keepAlive = false;
        socket.destroy();
      },
    };
  }

  /** The handler has written its response: detach the body, drain what is left, go on or close. */
  private responseFinished(): void {
    const { host } = this;
    // (a streamed answer whose socket closed as its last bytes went out: nothing is left to do)
    if (host.isClosed()) return;
    assert.ok(host.isCurrent(this), 'the finished answer is not the current request');
    this.answer = 'done';
    if (this.bodyPhase === 'complete') {
      host.finished();
      return;
    }
    this.body.destroy();
    if (!this.keepAlive || this.bodyPhase === 'broken') {
      host.linger();
      return;
    }
    this.bodyPhase = 'draining';
    host.arm('drain');
    host.resume();
  }

  /** Whether the connection stays open once this exchange is over. */
  get staysOpen(): boolean {
    return this.keepAlive && !this.host.shuttingDown;
  }

  /**
   * The client has sent FIN inside the body: it will never be complete. An answer already made is
   * flushed, one being written is finished; otherwise the request is abandoned without one. Either
   * way the connection then ends gracefully, so that answers to earlier requests still in the
   * socket's buffer are delivered.
   */
  peerEnded(): void {
    assert.ok(this.reading, `FIN awaited in body phase ${this.bodyPhase}`);
    if (this.bodyPhase === 'streaming') this.body.destroy(new HttpError('HTTP_BODY_INCOMPLETE'));
    if (this.answer === 'started') {
      // (responseFinished() closes, since there is nothing to drain toward)
      this.keepAlive = false;
      return;
    }
    if (this.answer === 'none') this.abort.abort(new HttpError('HTTP_PEER_CLOSED'));
    this.host.linger();
  }

  /** An idle timeout fired: a body still coming fails with its error, and the request is aborted with it. */
  timedOut(error: HttpError): void {
    if (this.bodyPhase === 'streaming') this.body.destroy(error);
    this.abort.abort(error);
  }

  /** The socket closed: a body still coming fails, and a request not yet answered is aborted. */
  closed(): void {
    if (this.bodyPhase === 'streaming') this.body.destroy(new HttpError('HTTP_BODY_INCOMPLETE'));
    if (this.answer !== 'done') this.abort.abort(new HttpError('HTTP_CONNECTION_CLOSED'));
  }
}
