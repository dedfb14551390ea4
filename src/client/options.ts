import type { Logger } from 'pino';
import { pino } from 'pino';
import { defaultMaxRetryDelay } from './retry-policy.js';
import type { RetryTiming } from './retry-policy.js';
import { isFieldValue, isToken } from '../http/token.js';
import type { Throttle } from './throttle.js';

/** Options every client job takes. Durations in milliseconds. */
export interface ClientOptions {
  /** `user:password` for Basic (or NTLM: `DOMAIN\user:password`) authentication; default: the user information in the URL. */
  user?: string | undefined;
  /**
   * Windows Authentication, as IIS offers it, instead of Basic: `negotiate` (Kerberos with the
   * ticket in the credential cache, see `kinit`; no password) or `ntlm` (NTLMv2 with `user`).
   * Journaled: a resumed job signs in the same way.
   */
  auth?: 'negotiate' | 'ntlm' | undefined;
  /**
   * Headers sent on every request of the job to its own hosts (`Name: value` pairs, like
   * `SetCustomHeaders`). Never credentials (`Authorization`, `Proxy-Authorization`, `Cookie`) in a
   * journaled job: the journal would keep them; use `user`.
   */
  headers?: Readonly<Record<string, string>> | undefined;
  /** PEM certificate(s) trusted for HTTPS in place of the system's CA store. */
  ca?: string | Buffer | undefined;
  /** Accept any HTTPS certificate (testing only). */
  insecure?: boolean | undefined;
  /** PEM client certificate (chain) presented to servers that ask for one; needs `key`. */
  cert?: string | Buffer | undefined;
  /** Path of the PEM private key of `cert`, read when the job starts or resumes; the journal keeps the path. */
  keyFile?: string | undefined;
  /** PEM private key of `cert` itself: only for a job without a journal (`stateDir: false`); else `keyFile`. */
  key?: string | Buffer | undefined;
  /** Wait before the first retry of a transient error; later waits double. Default 5 s. */
  retryDelayMs?: number | undefined;
  /** Longest wait between retries. Default 16 × `retryDelayMs`, at most 5 minutes. */
  maxRetryDelayMs?: number | undefined;
  /** Stop the job (resumable) after this long without progress; 0 = never. Default 1 hour. */
  noProgressTimeoutMs?: number | undefined;
  /** Longest time a single request may make no progress. Default 2 minutes. */
  idleTimeoutMs?: number | undefined;
  /** Longest time a cancel waits for the server's answer to Cancel-Session, resends included. Default 15 s. */
  cancelTimeoutMs?: number | undefined;
  /** Journal directory; default: per user (`defaultStateDir()`); `false`: no journal (not resumable). */
  stateDir?: string | false | undefined;
  /** Where the library logs; default: nowhere. */
  logger?: Logger | undefined;
  /** Shapes the job's bodies (a rate limit); held in memory only, so give it again on resume. */
  throttle?: Throttle | undefined;
}

/** Default wait before the first retry (the minimum Windows allows for MinimumRetryDelay). */
export const DEFAULT_RETRY_DELAY_MS = 5_000;
/** Default no-progress timeout: a foreground tool gives up (resumably) after an hour. */
export const DEFAULT_NO_PROGRESS_TIMEOUT_MS = 3_600_000;
/** Default request idle timeout (Windows: 2 min send timeout). */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;
/** Default cancel deadline: an unreachable host must not hold `bits cancel` or `--prune` for minutes. */
export const DEFAULT_CANCEL_TIMEOUT_MS = 15_000;
/** Default size of the first fragment: 8 MiB (Windows sends at most 13 MB; larger fragments mean fewer server fsyncs). */
export const DEFAULT_FRAGMENT_SIZE = 8 * 1024 * 1024;
/**
 * Default largest fragment when fragments grow (no fixed `fragmentSize` given): 28 MiB, under the
 * 30,000,000 bytes IIS 7's request filter takes by default and our server's 32 MiB.
 */
export const DEFAULT_MAX_FRAGMENT_SIZE = 28 * 1024 * 1024;
/** Fragments are never shrunk below this on 413 (Windows: 5 KB). */
export const MIN_FRAGMENT_SIZE = 5 * 1024;
/** Largest reply kept in memory (like `GetReplyData`). */
export const MAX_MEMORY_REPLY = 1024 * 1024;
/** Cancel-Session is sent at most this often (resent on 5xx and network errors, within `cancelTimeoutMs`). */
export const CANCEL_ATTEMPTS = 3;
/** The first wait between Cancel-Session attempts is at most this (the job's retry delay may be minutes). */
export const CANCEL_MAX_RETRY_DELAY_MS = 5_000;

/**
 * Whether `value` is a fragment size this client sends: a whole number of bytes, at least
 * {@link MIN_FRAGMENT_SIZE} (5 KiB, the floor Windows keeps to, spec §7.4; 413 never shrinks
 * fragments below it either). The one rule behind `fragmentSize` and `--fragment-size`.
 *
 * @example
 * ```ts
 * isFragmentSize(5120); // true
 * isFragmentSize(5119); // false
 * ```
 */
export function isFragmentSize(value: number): boolean {
  return Number.isSafeInteger(value) && value >= MIN_FRAGMENT_SIZE;
}

/**
 * Validates the `fragmentSize` (or another fragment size) option.
 *
 * @throws {RangeError} when it is not {@link isFragmentSize a fragment size}.
 * @example
 * ```ts
 * checkFragmentSize(65536); // 65536
 * checkFragmentSize(1000, 'maxFragmentSize'); // throws
 * ```
 */
export function checkFragmentSize(value: number, name = 'fragmentSize'): number {
  if (!isFragmentSize(value)) throw new RangeError(`${name} must be an integer >= ${MIN_FRAGMENT_SIZE} (5 KiB)`);
  return value;
}

/**
 * The fragment sizing of a new upload from its options: without either, fragments start at
 * {@link DEFAULT_FRAGMENT_SIZE} and grow up to {@link DEFAULT_MAX_FRAGMENT_SIZE}; `fragmentSize`
 * alone is a fixed size (shrunk on 413 only); `maxFragmentSize` lets them grow up to it, from
 * `fragmentSize` (default the smaller of 8 MiB and the maximum).
 *
 * @throws {RangeError} for a size below 5 KiB, or a maximum below `fragmentSize`.
 * @example
 * ```ts
 * fragmentSizing({}); // { fragmentSize: 8388608, maxFragmentSize: 29360128 }
 * fragmentSizing({ fragmentSize: 65536 }); // { fragmentSize: 65536, maxFragmentSize: undefined }
 * ```
 */
export function fragmentSizing(o: { fragmentSize?: number | undefined; maxFragmentSize?: number | undefined }): {
  fragmentSize: number;
  maxFragmentSize: number | undefined;
} {
  if (o.maxFragmentSize === undefined) {
    if (o.fragmentSize !== undefined) return { fragmentSize: checkFragmentSize(o.fragmentSize), maxFragmentSize: undefined };
    return { fragmentSize: DEFAULT_FRAGMENT_SIZE, maxFragmentSize: DEFAULT_MAX_FRAGMENT_SIZE };
  }
  const max = checkFragmentSize(o.maxFragmentSize, 'maxFragmentSize');
  const first = checkFragmentSize(o.fragmentSize ?? Math.min(DEFAULT_FRAGMENT_SIZE, max));
  if (max < first) throw new RangeError(`maxFragmentSize (${max}) must be at least fragmentSize (${first})`);
  return { fragmentSize: first, maxFragmentSize: max };
}

/**
 * Why a client certificate and its key do not go together (one given without the other), named as
 * the caller calls them; `undefined` when they do. The one rule behind the options and the flags.
 *
 * @example
 * ```ts
 * certKeyProblem(true, false, 'cert', 'key'); // 'cert and key go together'
 * ```
 */
export function certKeyProblem(hasCert: boolean, hasKey: boolean, certName: string, keyName: string): string | undefined {
  return hasCert === hasKey ? undefined : `${certName} and ${keyName} go together`;
}

/** Options with defaults applied. */
export interface ResolvedTiming extends RetryTiming {
  readonly idleTimeoutMs: number;
  readonly cancelTimeoutMs: number;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new RangeError(`${name} must be a number >= 0`);
  return value;
}

/**
 * Validates and completes the timing options of a job.
 *
 * @throws {RangeError} naming the option that is not a non-negative number.
 * @example
 * ```ts
 * resolveTiming({ retryDelayMs: 50 }); // { retryDelayMs: 50, maxRetryDelayMs: 800, noProgressTimeoutMs: 3600000, idleTimeoutMs: 120000, cancelTimeoutMs: 15000 }
 * ```
 */
export function resolveTiming(o: ClientOptions): ResolvedTiming {
  const retryDelayMs = nonNegative('retryDelayMs', o.retryDelayMs, DEFAULT_RETRY_DELAY_MS);
  const idleTimeoutMs = nonNegative('idleTimeoutMs', o.idleTimeoutMs, DEFAULT_IDLE_TIMEOUT_MS);
  if (idleTimeoutMs === 0) throw new RangeError('idleTimeoutMs must be > 0');
  const cancelTimeoutMs = nonNegative('cancelTimeoutMs', o.cancelTimeoutMs, DEFAULT_CANCEL_TIMEOUT_MS);
  if (cancelTimeoutMs === 0) throw new RangeError('cancelTimeoutMs must be > 0');
  return {
    retryDelayMs,
    maxRetryDelayMs: nonNegative('maxRetryDelayMs', o.maxRetryDelayMs, defaultMaxRetryDelay(retryDelayMs)),
    noProgressTimeoutMs: nonNegative('noProgressTimeoutMs', o.noProgressTimeoutMs, DEFAULT_NO_PROGRESS_TIMEOUT_MS),
    idleTimeoutMs,
    cancelTimeoutMs,
  };
}

/**
 * Validates custom headers (token names, no line breaks in values).
 *
 * @throws {TypeError} naming the offending header.
 * @example
 * ```ts
 * checkHeaders({ 'X-Tenant': 'a' }); // ok
 * ```
 */
export function checkHeaders(headers: Readonly<Record<string, string>> | undefined): void {
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!isToken(name)) throw new TypeError(`invalid header name "${name}"`);
    if (typeof value !== 'string' || !isFieldValue(value)) throw new TypeError(`invalid value for header ${name}`);
  }
}

/** Headers that carry credentials: never journaled (Basic authentication goes through `user`). */
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

/**
 * The first header that carries credentials, if any.
 *
 * @example
 * ```ts
 * credentialHeader({ 'X-Tenant': '1', authorization: 'Bearer x' }); // 'authorization'
 * ```
 */
export function credentialHeader(headers: Readonly<Record<string, string>> | undefined): string | undefined {
  return Object.keys(headers ?? {}).find((name) => CREDENTIAL_HEADERS.has(name.toLowerCase()));
}

/**
 * Parses `Name: value` header arguments into a map (later ones with the same name win).
 *
 * @throws {TypeError} for an argument without a colon or with an invalid name or value.
 * @example
 * ```ts
 * parseHeaderArgs(['X-Tenant: 42']); // { 'X-Tenant': '42' }
 * ```
 */
export function parseHeaderArgs(args: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const arg of args) {
    const i = arg.indexOf(':');
    if (i <= 0) throw new TypeError(`header "${arg}" is not of the form "Name: value"`);
    out[arg.slice(0, i).trim()] = arg.slice(i + 1).trim();
  }
  checkHeaders(out);
  return out;
}

/**
 * The silent logger used when none is given.
 *
 * @example
 * ```ts
 * const logger = options.logger ?? silentLogger();
 * ```
 */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
