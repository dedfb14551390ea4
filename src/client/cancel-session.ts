import { setTimeout as sleep } from 'node:timers/promises';
import type { AckInfo } from '../protocol/ack-info.js';
import { PacketType } from '../protocol/constants.js';
import { HResult } from '../protocol/hresult.js';
import { BitsClientError } from './errors.js';
import { CANCEL_ATTEMPTS, CANCEL_MAX_RETRY_DELAY_MS } from './options.js';
import type { ResolvedTiming } from './options.js';
import { backoffDelay } from './retry-policy.js';
import { serverError } from './server-error.js';

/**
 * Tells the server that a session is cancelled (spec §3.5), within `timing.cancelTimeoutMs` for every
 * attempt and wait together: a host that swallows requests must not hold a cancel (or
 * `bits jobs --prune`, one job after another) for the request idle timeout, attempt after attempt.
 * Resent on network errors and on 5xx (`classifyServerError`), at most {@link CANCEL_ATTEMPTS} times
 * with the job's backoff. A session the server no longer knows counts as cancelled, and so does an
 * answer that is not resent (1xx–4xx) other than a refusal.
 *
 * @param send sends the Cancel-Session packet to `url` with the given signal and reads its Ack
 * @throws {BitsClientError} the server's refusal (401, 403: the session lives on, and so must the
 *   job), or the last network error, or BITS_CLIENT_NETWORK when the deadline passed.
 * @example
 * ```ts
 * await cancelSession((signal) => post({ type: 'Cancel-Session', sessionId }, url, { signal }), url, timing);
 * ```
 */
export async function cancelSession(send: (signal: AbortSignal) => Promise<AckInfo>, url: URL, timing: ResolvedTiming): Promise<void> {
  const seconds = timing.cancelTimeoutMs / 1000;
  const deadline = new AbortController();
  const timer = setTimeout(
    () => deadline.abort(new BitsClientError('BITS_CLIENT_NETWORK', `no answer within ${seconds} s`, { request: PacketType.CancelSession, url: url.href })),
    timing.cancelTimeoutMs,
  );
  // The job's retry delay may be minutes: a cancel waits a few seconds at most.
  const backoff = { ...timing, retryDelayMs: Math.min(timing.retryDelayMs, CANCEL_MAX_RETRY_DELAY_MS) };
  try {
    for (let attempt = 1; attempt <= CANCEL_ATTEMPTS; attempt++) {
      let ack: AckInfo | undefined;
      try {
        ack = await send(deadline.signal);
      } catch (err) {
        if (attempt === CANCEL_ATTEMPTS || deadline.signal.aborted) throw err;
      }
      if (ack && (ack.ok || ack.hresult === HResult.SessionNotFound)) return;
      const error = ack && serverError(ack, PacketType.CancelSession, url);
      if (ack && error?.kind === 'fatal') {
        // Refused: the session lives on, and so must the job, to be cancelled again with credentials.
        if (ack.status === 401 || ack.status === 403) throw error;
        // Refused for good otherwise: 1xx–4xx are not resent (spec §3.5).
        return;
      }
      if (attempt < CANCEL_ATTEMPTS) await sleep(backoffDelay(attempt, backoff), undefined, { signal: deadline.signal }).catch(() => undefined);
      if (deadline.signal.aborted) throw deadline.signal.reason;
    }
  } finally {
    clearTimeout(timer);
  }
}
