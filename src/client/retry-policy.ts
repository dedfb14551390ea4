import { PacketType } from '../protocol/constants.js';
import { HResult } from '../protocol/hresult.js';
import type { ErrorKind } from './errors.js';

/** HRESULTs that end a job whatever the status (spec §7.1 "common response handling"). */
const FATAL_HRESULTS: ReadonlySet<number> = new Set([HResult.AccessDenied, HResult.InvalidArg, HResult.TooLarge, HResult.ProtocolMismatch]);

/** What was sent: a packet type, `GET` or `HEAD`. */
export interface ClassifyContext {
  readonly packet?: string | undefined;
}

function isRetried5xx(status: number): boolean {
  return status >= 500 && status < 600 && status !== 501 && status !== 505;
}

/**
 * Whether a server's error answer is worth retrying (spec §7.2): 3xx transient except 300–305 and 307;
 * 4xx fatal except 408 and 409; 5xx transient except 501 and 505; anything else transient. An HRESULT
 * that names a permanent condition (E_ACCESSDENIED, E_INVALIDARG, BG_E_TOO_LARGE, protocol mismatch)
 * is fatal whatever the status, so 409 + E_ACCESSDENIED ("destination exists") ends the job.
 *
 * Close-Session and Cancel-Session (`packet`) have a rule of their own (spec §3.4, §3.5, §7.2): they
 * are resent on 5xx except 501 and 505, whatever the HRESULT, and never on anything else.
 *
 * @example
 * ```ts
 * classifyServerError(503);              // 'transient'
 * classifyServerError(500, 0x80200020);  // 'fatal' (BG_E_TOO_LARGE)
 * classifyServerError(403);              // 'fatal'
 * classifyServerError(409, undefined, { packet: 'Close-Session' }); // 'fatal'
 * ```
 */
export function classifyServerError(status: number, hresult?: number, context: ClassifyContext = {}): Exclude<ErrorKind, 'interrupted'> {
  if (context.packet === PacketType.CloseSession || context.packet === PacketType.CancelSession) {
    return isRetried5xx(status) ? 'transient' : 'fatal';
  }
  if (hresult !== undefined && FATAL_HRESULTS.has(hresult >>> 0)) return 'fatal';
  if (status >= 300 && status < 400) return (status >= 300 && status <= 305) || status === 307 ? 'fatal' : 'transient';
  if (status >= 400 && status < 500) return status === 408 || status === 409 ? 'transient' : 'fatal';
  if (status >= 500 && status < 600) return isRetried5xx(status) ? 'transient' : 'fatal';
  return 'transient';
}

/** Retry timing of a job. All in milliseconds. */
export interface RetryTiming {
  /** Wait before the first retry; later ones double. */
  readonly retryDelayMs: number;
  /** The longest wait between retries. */
  readonly maxRetryDelayMs: number;
  /** Transient errors for this long with no progress stop the job (resumable); 0 = never. */
  readonly noProgressTimeoutMs: number;
}

/** Longest cap on the backoff by default: 5 minutes. */
const DEFAULT_CAP_MS = 300_000;

/**
 * The default backoff cap for a first retry delay: 16 times it, at most 5 minutes (never below it).
 *
 * @example
 * ```ts
 * defaultMaxRetryDelay(5_000); // 80_000
 * defaultMaxRetryDelay(50);    // 800
 * ```
 */
export function defaultMaxRetryDelay(retryDelayMs: number): number {
  return Math.max(retryDelayMs, Math.min(DEFAULT_CAP_MS, retryDelayMs * 16));
}

/**
 * How long to wait before retry number `attempt` (1 = the first): exponential backoff from
 * `retryDelayMs`, capped at `maxRetryDelayMs`, plus up to 20 % of jitter (so retries of many clients do
 * not line up). The first retry waits at least `retryDelayMs`.
 *
 * @example
 * ```ts
 * backoffDelay(1, { retryDelayMs: 1000, maxRetryDelayMs: 8000, noProgressTimeoutMs: 0 }, () => 0); // 1000
 * backoffDelay(5, { retryDelayMs: 1000, maxRetryDelayMs: 8000, noProgressTimeoutMs: 0 }, () => 0); // 8000
 * ```
 */
export function backoffDelay(attempt: number, timing: RetryTiming, random: () => number = Math.random): number {
  const exp = timing.retryDelayMs * 2 ** Math.min(30, Math.max(0, attempt - 1));
  const base = Math.min(Math.max(timing.maxRetryDelayMs, timing.retryDelayMs), exp);
  return Math.round(base * (1 + 0.2 * random()));
}

/** What decides the wait before a retry (all times in ms, on the same clock). */
export interface RetryWaitInput {
  /** The retry's number since the last progress (1 = the first). */
  readonly attempt: number;
  readonly timing: RetryTiming;
  /** Time since the job's last progress. */
  readonly idleMs: number;
  /** The server's `Retry-After`, when it sent one. */
  readonly retryAfterMs?: number | undefined;
  /** An upper bound of the job's own (a Host-Id fallback that falls due); `Infinity` for none. */
  readonly capMs?: number | undefined;
  readonly random?: (() => number) | undefined;
}

/**
 * How long a job waits before its next retry: the backoff ({@link backoffDelay}), cut to what is left
 * of the no-progress limit and to `capMs`; at least the server's `Retry-After`, but never beyond the
 * no-progress limit either.
 *
 * @example
 * ```ts
 * const timing = { retryDelayMs: 1000, maxRetryDelayMs: 8000, noProgressTimeoutMs: 10_000 };
 * retryWaitMs({ attempt: 1, timing, idleMs: 0, random: () => 0 });                      // 1000
 * retryWaitMs({ attempt: 4, timing, idleMs: 9_500, random: () => 0 });                  // 500 (the limit)
 * retryWaitMs({ attempt: 1, timing, idleMs: 0, retryAfterMs: 5000, random: () => 0 });  // 5000
 * ```
 */
export function retryWaitMs(input: RetryWaitInput): number {
  const limit = input.timing.noProgressTimeoutMs;
  const left = limit > 0 ? Math.max(0, limit - input.idleMs) : Number.POSITIVE_INFINITY;
  let delayMs = Math.min(backoffDelay(input.attempt, input.timing, input.random), left);
  delayMs = Math.max(0, Math.min(delayMs, input.capMs ?? Number.POSITIVE_INFINITY));
  // The server asked for a pause (503 + Retry-After): wait at least that, within the no-progress limit.
  if (input.retryAfterMs !== undefined) delayMs = Math.max(delayMs, Math.min(input.retryAfterMs, left));
  return delayMs;
}
