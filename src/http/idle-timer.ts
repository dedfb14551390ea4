import { HttpError } from './errors.js';
import type { HttpErrorCode } from './errors.js';
import type { HttpLimits } from './limits.js';

/**
 * What the connection is waiting for when its one timer runs:
 * - `head`: the rest of a request head (from its first byte; also the first head of a connection);
 * - `body`: the next body byte while the handler reads;
 * - `drain`: the next byte of a body discarded after an early answer;
 * - `answer`: the handler's answer to a body whose chunked framing broke;
 * - `keep-alive`: the next request on an idle connection;
 * - `write`: progress of a response body the client is reading;
 * - `linger`: the client's close after ours.
 */
export type TimerKind = 'head' | 'body' | 'drain' | 'answer' | 'keep-alive' | 'write' | 'linger';

/** How long the client gets to close after we have ended our side. */
export const LINGER_MS = 2000;

/** The code of the error each kind of timeout fails the request with. */
const CODES: Readonly<Record<TimerKind, HttpErrorCode>> = {
  head: 'HTTP_HEADER_TIMEOUT',
  body: 'HTTP_BODY_IDLE_TIMEOUT',
  drain: 'HTTP_DRAIN_TIMEOUT',
  answer: 'HTTP_ANSWER_TIMEOUT',
  'keep-alive': 'HTTP_KEEP_ALIVE_TIMEOUT',
  write: 'HTTP_WRITE_IDLE_TIMEOUT',
  linger: 'HTTP_LINGER_TIMEOUT',
};

/** The durations the timer reads: the idle timeouts of {@link HttpLimits}. */
export type TimerLimits = Pick<HttpLimits, 'headerTimeoutMs' | 'bodyIdleTimeoutMs' | 'keepAliveTimeoutMs' | 'writeIdleTimeoutMs'>;

function durationOf(kind: TimerKind, limits: TimerLimits): number {
  switch (kind) {
    case 'head':
      return limits.headerTimeoutMs;
    case 'body':
    case 'drain':
    case 'answer':
      return limits.bodyIdleTimeoutMs;
    case 'keep-alive':
      return limits.keepAliveTimeoutMs;
    case 'write':
      return limits.writeIdleTimeoutMs;
    case 'linger':
      return LINGER_MS;
  }
}

/**
 * A connection's one idle timer. It runs for one {@link TimerKind} at a time; arming another kind
 * replaces it. When it fires, the kind it was armed with decides the error ({@link HttpError} with
 * `HTTP_HEADER_TIMEOUT`, `HTTP_BODY_IDLE_TIMEOUT`, …) handed to `onTimeout`. The timer is unref'd:
 * it never keeps the process alive.
 *
 * @example
 * ```ts
 * const timer = new IdleTimer(limits, (kind, err) => socket.destroy(err));
 * timer.arm('head');
 * timer.refresh(); // progress: the same kind starts over
 * timer.clear();
 * ```
 */
export class IdleTimer {
  private handle: NodeJS.Timeout | null = null;
  private armed: TimerKind | null = null;

  constructor(
    private readonly limits: TimerLimits,
    private readonly onTimeout: (kind: TimerKind, error: HttpError) => void,
  ) {}

  /** The kind running, or `null`. */
  get kind(): TimerKind | null {
    return this.armed;
  }

  /** Starts the timer for `kind` (its duration from the limits), replacing whatever ran. */
  arm(kind: TimerKind): void {
    this.clear();
    this.armed = kind;
    this.handle = setTimeout(() => this.fire(kind), durationOf(kind, this.limits));
    this.handle.unref();
  }

  /** Progress was made: the running kind starts over. Nothing happens when no timer runs. */
  refresh(): void {
    this.handle?.refresh();
  }

  /** Stops the timer. */
  clear(): void {
    if (this.handle) clearTimeout(this.handle);
    this.handle = null;
    this.armed = null;
  }

  private fire(kind: TimerKind): void {
    this.handle = null;
    this.armed = null;
    this.onTimeout(kind, new HttpError(CODES[kind]));
  }
}
