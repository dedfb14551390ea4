import { HResult } from '../protocol/hresult.js';
import type { ErrorKind } from './errors.js';

/** HRESULTs that end a job whatever the status (spec §7.1 "common response handling"). */
const FATAL_HRESULTS: ReadonlySet<number> = new Set([
  HResult.AccessDenied,
  HResult.InvalidArg,
  HResult.TooLarge,
  0x80200022, // BG_E_CLIENT_SERVER_PROTOCOL_MISMATCH
]);

/**
 * Whether a server's error answer is worth retrying (spec §7.2): 3xx transient except 300–305 and 307;
 * 4xx fatal except 408 and 409; 5xx transient except 501 and 505; anything else transient. An HRESULT
 * that names a permanent condition (E_ACCESSDENIED, E_INVALIDARG, BG_E_TOO_LARGE, protocol mismatch)
 * is fatal whatever the status, so 409 + E_ACCESSDENIED ("destination exists") ends the job.
 *
 * @example
 * ```ts
 * classifyServerError(503);              // 'transient'
 * classifyServerError(500, 0x80200020);  // 'fatal' (BG_E_TOO_LARGE)
 * classifyServerError(403);              // 'fatal'
 * ```
 */
export function classifyServerError(status: number, hresult?: number): Exclude<ErrorKind, 'interrupted'> {
  if (hresult !== undefined && FATAL_HRESULTS.has(hresult >>> 0)) return 'fatal';
  if (status >= 300 && status < 400) return (status >= 300 && status <= 305) || status === 307 ? 'fatal' : 'transient';
  if (status >= 400 && status < 500) return status === 408 || status === 409 ? 'transient' : 'fatal';
  if (status >= 500 && status < 600) return status === 501 || status === 505 ? 'fatal' : 'transient';
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
