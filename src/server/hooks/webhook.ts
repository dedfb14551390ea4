import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { USER_AGENT } from '../../protocol/constants.js';

/** Where and how a vdir's webhook is delivered. */
export interface WebhookTarget {
  readonly url: URL;
  /** The HMAC key of `X-Bits-Signature`; `null`: deliveries are not signed. */
  readonly secret: string | null;
  /** Limit of one attempt, answer included (ms). */
  readonly timeoutMs: number;
  /** Attempts after the first one that failed for a reason worth retrying. */
  readonly retries: number;
}

/** The header carrying a delivery's signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`. */
export const SIGNATURE_HEADER = 'X-Bits-Signature';
/** The header naming a delivery's event (`session.create`, `upload.committed`). */
export const EVENT_HEADER = 'X-Bits-Event';
/** The header carrying a delivery's id, the same on each of its attempts (for deduplication). */
export const DELIVERY_HEADER = 'X-Bits-Delivery';

/** The delay before the first retry; each further one doubles it, up to {@link MAX_BACKOFF_MS}. */
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 30_000;
/** The most of an answer's body that is read (a create decision is a few bytes of JSON). */
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * The `X-Bits-Signature` value of `body` signed with `secret` at `unixSeconds`.
 *
 * @example
 * ```ts
 * signature('{"a":1}', 'shared-secret', 1767225600); // 't=1767225600,v1=3f0c…'
 * ```
 */
export function signature(body: string, secret: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}

/** How old a signature {@link verifyWebhookSignature} accepts by default, in seconds. */
const DEFAULT_TOLERANCE_SECONDS = 300;

/**
 * Checks an `X-Bits-Signature` header against the raw request body and the shared secret, as a
 * receiver does: the HMAC must match and its timestamp be within `toleranceSeconds` (default 300)
 * of `now` (ms, default the clock), so that a recorded delivery cannot be replayed later.
 *
 * @example
 * ```ts
 * if (!verifyWebhookSignature(req.headers['x-bits-signature'], rawBody, process.env.BITS_HOOK_SECRET!)) res.writeHead(401).end();
 * ```
 */
export function verifyWebhookSignature(
  header: string | undefined,
  body: string | Buffer,
  secret: string,
  options: { toleranceSeconds?: number; now?: number } = {},
): boolean {
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(header ?? '');
  if (!match) return false;
  const t = Number(match[1]);
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  if (Math.abs(now - t) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const expected = createHmac('sha256', secret).update(`${t}.`).update(body).digest();
  return timingSafeEqual(expected, Buffer.from(match[2]!, 'hex'));
}

/** A failed attempt; `retryable` when another attempt may succeed (no answer, 408, 429, 5xx). */
export class WebhookError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'WebhookError';
  }
}

/** A 2xx answer of a receiver. */
export interface WebhookAnswer {
  readonly status: number;
  /** Its body, as text (at most 64 KiB of it). */
  readonly body: string;
}

/** What {@link deliver} reports about an attempt that failed and will be retried. */
export type RetryReport = (failure: WebhookError, attempt: number, delayMs: number) => void;

/** The body of a response, up to {@link MAX_ANSWER_BYTES} (an answer over it is refused). */
async function readAnswer(res: Response): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > MAX_ANSWER_BYTES) throw new WebhookError(`answer of ${declared} bytes is over ${MAX_ANSWER_BYTES}`, false);
  const chunks: Uint8Array[] = [];
  let seen = 0;
  for await (const chunk of res.body ?? []) {
    seen += chunk.length;
    if (seen > MAX_ANSWER_BYTES) throw new WebhookError(`answer over ${MAX_ANSWER_BYTES} bytes`, false);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One POST of `body`, signed afresh (its timestamp is the attempt's). */
async function attempt(target: WebhookTarget, event: string, delivery: string, body: string): Promise<WebhookAnswer> {
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    'User-Agent': USER_AGENT,
    [EVENT_HEADER]: event,
    [DELIVERY_HEADER]: delivery,
  };
  if (target.secret !== null) headers[SIGNATURE_HEADER] = signature(body, target.secret, Math.floor(Date.now() / 1000));
  let res: Response;
  let text: string;
  try {
    res = await fetch(target.url, { method: 'POST', headers, body, redirect: 'manual', signal: AbortSignal.timeout(target.timeoutMs) });
    text = await readAnswer(res);
  } catch (err) {
    if (err instanceof WebhookError) throw err;
    const timedOut = (err as Error).name === 'TimeoutError';
    const why = timedOut ? `no answer within ${target.timeoutMs / 1000} s` : `cannot reach it (${causeOf(err)})`;
    throw new WebhookError(`${target.url.origin}: ${why}`, true, { cause: err });
  }
  if (res.status >= 200 && res.status <= 299) return { status: res.status, body: text };
  const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
  throw new WebhookError(`${target.url.origin} answered ${res.status}`, retryable);
}

/** The innermost message of a fetch failure (`ECONNREFUSED`, …). */
function causeOf(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (err as Error).message;
}

/** The wait before retry number `n` (0 for the first): 250 ms, doubled each time, at most 30 s. */
export function backoffMs(n: number): number {
  return Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** n);
}

/**
 * POSTs `payload` as JSON to a webhook, signed when the target has a secret, and retries an attempt
 * that failed for a reason worth retrying (no answer within the target's timeout, no connection,
 * 408, 429, 5xx) up to `target.retries` times with exponential backoff ({@link backoffMs}). Every
 * attempt carries the same `X-Bits-Delivery` id. Bounded: at most `retries + 1` attempts, each
 * within `timeoutMs`, and the waits between them.
 *
 * @throws {WebhookError} the last attempt's failure.
 * @example
 * ```ts
 * const answer = await deliver(target, 'upload.committed', { sessionId }, (err, n, ms) => log.warn(err.message));
 * ```
 */
export async function deliver(target: WebhookTarget, event: string, payload: unknown, onRetry?: RetryReport): Promise<WebhookAnswer> {
  const body = JSON.stringify(payload);
  const delivery = randomUUID();
  for (let n = 0; ; n++) {
    try {
      return await attempt(target, event, delivery, body);
    } catch (err) {
      const failure = err as WebhookError;
      if (!failure.retryable || n >= target.retries) throw failure;
      const delayMs = backoffMs(n);
      onRetry?.(failure, n + 1, delayMs);
      await sleep(delayMs, undefined, { ref: false });
    }
  }
}
